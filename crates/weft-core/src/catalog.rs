//! The catalog's search index: an in-memory index over the applied mesh, rebuilt on every
//! apply (and at start-up), so a search never scans anything but this index.
//!
//! Documents are domains, products, contracts, contract properties (nested ones too) and
//! streams. Each document has weighted fields: its name weighs most, then tags, then owners,
//! domain, classification and id, then descriptions, then context (the contract a property
//! belongs to). Text is tokenised on anything that is not a letter or digit, split at camelCase
//! boundaries, and case-folded; a query word matches a document word exactly or as a prefix
//! (`cust` finds `customer`). A document's score is the sum, over query words, of its best
//! weighted match, scaled by the share of query words it matched, so documents that match every
//! word rank first. Every hit lists the fields that matched with a snippet of their text.
//!
//! Limits: `SEARCH_QUERY_BYTES_MAX`, `SEARCH_QUERY_WORDS_MAX`, `SEARCH_HITS_MAX`,
//! `SNIPPET_CHARS_MAX`.

use std::collections::BTreeSet;

use weft_contract::{DataContract, DataProduct, SchemaProperty};

use crate::mesh::{MeshState, topic_streams};

/// Longest query accepted (bytes).
pub const SEARCH_QUERY_BYTES_MAX: usize = 1024;
/// Most words of a query that count (later ones are ignored).
pub const SEARCH_QUERY_WORDS_MAX: usize = 32;
/// Most hits returned.
pub const SEARCH_HITS_MAX: usize = 100;
/// Hits returned when the caller does not say.
pub const SEARCH_HITS_DEFAULT: usize = 20;
/// Longest snippet of a matched field (characters, without the ellipses).
pub const SNIPPET_CHARS_MAX: usize = 160;

const WEIGHT_NAME: f64 = 3.0;
const WEIGHT_TAG: f64 = 2.0;
const WEIGHT_OWNER: f64 = 1.5;
const WEIGHT_DOMAIN: f64 = 1.5;
const WEIGHT_CLASSIFICATION: f64 = 1.5;
const WEIGHT_ID: f64 = 1.2;
const WEIGHT_DESCRIPTION: f64 = 1.0;
const WEIGHT_CONTEXT: f64 = 0.5;

/// What a search hit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HitKind {
    Product,
    Contract,
    Property,
    Stream,
    Domain,
}

impl HitKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Product => "product",
            Self::Contract => "contract",
            Self::Property => "property",
            Self::Stream => "stream",
            Self::Domain => "domain",
        }
    }
}

struct Field {
    name: &'static str,
    text: String,
    weight: f64,
    tokens: Vec<String>,
}

struct Document {
    kind: HitKind,
    id: String,
    product: Option<String>,
    domain: Option<String>,
    name: String,
    fields: Vec<Field>,
    /// Case-folded tags and classifications, for the filters.
    tags: BTreeSet<String>,
    classifications: BTreeSet<String>,
}

impl Document {
    fn new(kind: HitKind, id: &str, name: &str, product: Option<&str>, domain: Option<&str>) -> Self {
        let mut document = Self {
            kind,
            id: id.to_string(),
            product: product.map(str::to_string),
            domain: domain.map(str::to_string),
            name: name.to_string(),
            fields: Vec::new(),
            tags: BTreeSet::new(),
            classifications: BTreeSet::new(),
        };
        document.field("name", name, WEIGHT_NAME);
        if let Some(domain) = domain {
            document.field("domain", domain, WEIGHT_DOMAIN);
        }
        document
    }

    fn field(&mut self, name: &'static str, text: &str, weight: f64) {
        let tokens = tokenize(text);
        if !tokens.is_empty() {
            self.fields.push(Field { name, text: text.to_string(), weight, tokens });
        }
    }

    fn tag(&mut self, tag: &str) {
        self.tags.insert(tag.to_lowercase());
        self.field("tag", tag, WEIGHT_TAG);
    }

    fn classification(&mut self, classification: &str, searchable: bool) {
        self.classifications.insert(classification.to_lowercase());
        if searchable {
            self.field("classification", classification, WEIGHT_CLASSIFICATION);
        }
    }
}

/// Why a query cannot run; the edges turn it into their own error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchQueryError {
    TooLong { n_bytes: usize },
    Empty,
    NoWords,
}

impl std::fmt::Display for SearchQueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLong { n_bytes } => write!(f, "q is {n_bytes} bytes; the limit is {SEARCH_QUERY_BYTES_MAX} bytes"),
            Self::Empty => write!(f, "q must not be empty; give words to search for, or a domain, tag or classification filter"),
            Self::NoWords => write!(f, "q has no letters or digits to search for"),
        }
    }
}

impl std::error::Error for SearchQueryError {}

/// One field of a hit that matched, with a snippet of its text.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedField {
    pub field: &'static str,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub kind: HitKind,
    pub id: String,
    pub product: Option<String>,
    pub domain: Option<String>,
    pub name: String,
    pub score: f64,
    pub matched: Vec<MatchedField>,
}

/// A search: free text plus optional exact filters (case-insensitive).
#[derive(Debug, Clone, Default)]
pub struct SearchQuery<'a> {
    pub text: &'a str,
    pub domain: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub classification: Option<&'a str>,
    pub limit: usize,
}

/// The index; see the module docs.
#[derive(Default)]
pub struct SearchIndex {
    documents: Vec<Document>,
}

/// Words of a text, case-folded: split on anything but letters and digits, and at camelCase
/// boundaries (the whole camelCase word is kept too).
pub fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let lower = word.to_lowercase();
        let mut parts = Vec::new();
        let mut start = 0;
        let chars: Vec<(usize, char)> = word.char_indices().collect();
        for window in chars.windows(2) {
            let ((_, a), (idx, b)) = (window[0], window[1]);
            if a.is_lowercase() && b.is_uppercase() {
                parts.push(word[start..idx].to_lowercase());
                start = idx;
            }
        }
        if start > 0 {
            parts.push(word[start..].to_lowercase());
            tokens.extend(parts);
        }
        tokens.push(lower);
    }
    tokens
}

impl SearchIndex {
    /// Indexes every domain, product, contract (latest version), property and stream.
    pub fn build(mesh: &MeshState) -> Self {
        let mut documents = Vec::new();
        for domain in mesh.domains.values() {
            let mut document = Document::new(HitKind::Domain, &domain.name, &domain.name, None, Some(&domain.name));
            if let Some(description) = &domain.description {
                document.field("description", description, WEIGHT_DESCRIPTION);
            }
            for owner in &domain.owners {
                document.field("owner", owner, WEIGHT_OWNER);
            }
            if let Some(team) = &domain.team {
                for member in team.members() {
                    document.field("owner", &member.username, WEIGHT_OWNER);
                }
            }
            documents.push(document);
        }
        for product in mesh.catalog_products() {
            documents.push(product_document(mesh, product));
        }
        for versions in mesh.contracts.values() {
            let Some(contract) = versions.last() else { continue };
            let product = mesh.product_of_contract(&contract.id);
            let product_id = product.map(|p| p.id.as_str());
            let domain = contract.domain.as_deref().or(product.and_then(|p| p.domain.as_deref()));
            documents.push(contract_document(contract, product_id, domain));
            for object in &contract.schema {
                let context = format!("{} {}", contract.name.as_deref().unwrap_or(&contract.id), object.name);
                for property in &object.properties {
                    property_documents(contract, property, "", &context, product_id, domain, &mut documents);
                }
                let Some(stream) = object.physical_name.as_deref().filter(|_| object.physical_type.as_deref() == Some("topic")) else {
                    continue;
                };
                let mut document = Document::new(HitKind::Stream, stream, stream, product_id, domain);
                if let Some(description) = &object.description {
                    document.field("description", description, WEIGHT_DESCRIPTION);
                }
                document.field("context", &context, WEIGHT_CONTEXT);
                for tag in contract.tags.iter().chain(&object.tags) {
                    document.tag(tag);
                }
                for classification in classifications_of(&object.properties) {
                    document.classification(&classification, false);
                }
                documents.push(document);
            }
        }
        Self { documents }
    }

    pub fn n_documents(&self) -> usize {
        self.documents.len()
    }

    /// Ranked hits. A query without words is an error unless a filter is given, in which case
    /// every document passing the filters is a hit (it matched the filters).
    pub fn search(&self, query: &SearchQuery<'_>) -> Result<Vec<SearchHit>, SearchQueryError> {
        if query.text.len() > SEARCH_QUERY_BYTES_MAX {
            return Err(SearchQueryError::TooLong { n_bytes: query.text.len() });
        }
        let mut words: Vec<String> = Vec::new();
        for word in query.text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase) {
            if !words.contains(&word) && words.len() < SEARCH_QUERY_WORDS_MAX {
                words.push(word);
            }
        }
        let has_filter = query.domain.is_some() || query.tag.is_some() || query.classification.is_some();
        if words.is_empty() && !has_filter {
            return Err(if query.text.trim().is_empty() { SearchQueryError::Empty } else { SearchQueryError::NoWords });
        }
        let mut hits: Vec<SearchHit> =
            self.documents.iter().filter(|d| passes_filters(d, query)).filter_map(|d| score(d, &words, query)).collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.kind.cmp(&b.kind)).then_with(|| a.id.cmp(&b.id)));
        hits.truncate(query.limit.clamp(1, SEARCH_HITS_MAX));
        Ok(hits)
    }
}

fn passes_filters(document: &Document, query: &SearchQuery<'_>) -> bool {
    let domain_ok = query.domain.is_none_or(|d| document.domain.as_deref().is_some_and(|dd| dd.eq_ignore_ascii_case(d)));
    let tag_ok = query.tag.is_none_or(|t| document.tags.contains(&t.to_lowercase()));
    let classification_ok = query.classification.is_none_or(|c| document.classifications.contains(&c.to_lowercase()));
    domain_ok && tag_ok && classification_ok
}

/// How well one query word matches one document word: 1 for the same word, less for a prefix
/// (more the closer the prefix is to the whole word), 0 otherwise.
fn word_match(query_word: &str, token: &str) -> f64 {
    if token == query_word {
        1.0
    } else if token.starts_with(query_word) {
        0.4 + 0.4 * query_word.chars().count() as f64 / token.chars().count() as f64
    } else {
        0.0
    }
}

fn score(document: &Document, words: &[String], query: &SearchQuery<'_>) -> Option<SearchHit> {
    let mut matched_fields: Vec<(usize, &str)> = Vec::new();
    let mut total = 0.0;
    let mut n_matched_words = 0;
    for word in words {
        let mut best: Option<(f64, usize, &str)> = None;
        for (field_idx, field) in document.fields.iter().enumerate() {
            for token in &field.tokens {
                let value = field.weight * word_match(word, token);
                if value > 0.0 && best.is_none_or(|(b, _, _)| value > b) {
                    best = Some((value, field_idx, token));
                }
            }
        }
        if let Some((value, field_idx, token)) = best {
            total += value;
            n_matched_words += 1;
            if !matched_fields.iter().any(|(idx, _)| *idx == field_idx) {
                matched_fields.push((field_idx, token));
            }
        }
    }
    // Strongest fields first, so the first entry is the main reason for the hit.
    matched_fields.sort_by(|a, b| document.fields[b.0].weight.total_cmp(&document.fields[a.0].weight));
    let mut matched: Vec<MatchedField> = matched_fields
        .iter()
        .map(|&(field_idx, token)| {
            let field = &document.fields[field_idx];
            MatchedField { field: field.name, text: snippet(&field.text, token) }
        })
        .collect();
    if words.is_empty() {
        // Filters only: the filters are why it matched.
        if let Some(domain) = query.domain {
            matched.push(MatchedField { field: "domain", text: document.domain.clone().unwrap_or_else(|| domain.to_string()) });
        }
        if let Some(tag) = query.tag {
            matched.push(MatchedField { field: "tag", text: tag.to_lowercase() });
        }
        if let Some(classification) = query.classification {
            matched.push(MatchedField { field: "classification", text: classification.to_lowercase() });
        }
    } else if n_matched_words == 0 {
        return None;
    }
    let coverage = if words.is_empty() { 1.0 } else { n_matched_words as f64 / words.len() as f64 };
    Some(SearchHit {
        kind: document.kind,
        id: document.id.clone(),
        product: document.product.clone(),
        domain: document.domain.clone(),
        name: document.name.clone(),
        score: (total * coverage * 100.0).round() / 100.0,
        matched,
    })
}

/// The text around the first occurrence of `token` (case-insensitive), at most
/// `SNIPPET_CHARS_MAX` characters, with `…` where it was cut.
pub fn snippet(text: &str, token: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= SNIPPET_CHARS_MAX {
        return text.to_string();
    }
    let lower: Vec<char> = chars.iter().map(|c| c.to_lowercase().next().unwrap_or(*c)).collect();
    let needle: Vec<char> = token.chars().collect();
    let found = lower.windows(needle.len().max(1)).position(|window| window == needle.as_slice()).unwrap_or(0);
    let start = found.saturating_sub(SNIPPET_CHARS_MAX / 3);
    let end = (start + SNIPPET_CHARS_MAX).min(chars.len());
    let start = end.saturating_sub(SNIPPET_CHARS_MAX);
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(&chars[start..end]);
    if end < chars.len() {
        out.push('…');
    }
    out
}

fn description_text(description: Option<&weft_contract::Description>) -> Option<String> {
    let description = description?;
    let parts: Vec<&str> =
        [&description.purpose, &description.usage, &description.limitations].into_iter().filter_map(|p| p.as_deref()).collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn product_document(mesh: &MeshState, product: &DataProduct) -> Document {
    let name = product.name.as_deref().unwrap_or(&product.id);
    let mut document = Document::new(HitKind::Product, &product.id, name, Some(&product.id), product.domain.as_deref());
    document.field("id", &product.id, WEIGHT_ID);
    for tag in &product.tags {
        document.tag(tag);
    }
    if let Some(description) = description_text(product.description.as_ref()) {
        document.field("description", &description, WEIGHT_DESCRIPTION);
    }
    let domain_owners = product.domain.as_ref().and_then(|d| mesh.domains.get(d)).map(|d| d.owners.clone()).unwrap_or_default();
    let team_members = product.team.iter().flat_map(|t| t.members().iter().map(|m| m.username.clone()));
    let owners: BTreeSet<String> = domain_owners.into_iter().chain(team_members).collect();
    for owner in &owners {
        document.field("owner", owner, WEIGHT_OWNER);
    }
    for contract in product.output_ports.iter().filter_map(|p| p.contract_id.as_deref()).filter_map(|id| mesh.contract(id)) {
        for tag in &contract.tags {
            document.tags.insert(tag.to_lowercase());
        }
        for object in &contract.schema {
            for classification in classifications_of(&object.properties) {
                document.classification(&classification, false);
            }
        }
        for stream in topic_streams(contract) {
            document.field("stream", &stream, WEIGHT_CONTEXT);
        }
    }
    document
}

fn contract_document(contract: &DataContract, product: Option<&str>, domain: Option<&str>) -> Document {
    let name = contract.name.as_deref().unwrap_or(&contract.id);
    let mut document = Document::new(HitKind::Contract, &contract.id, name, product, domain);
    document.field("id", &contract.id, WEIGHT_ID);
    for tag in &contract.tags {
        document.tag(tag);
    }
    if let Some(description) = description_text(contract.description.as_ref()) {
        document.field("description", &description, WEIGHT_DESCRIPTION);
    }
    if let Some(team) = &contract.team {
        for member in team.members() {
            document.field("owner", &member.username, WEIGHT_OWNER);
        }
    }
    for object in &contract.schema {
        for classification in classifications_of(&object.properties) {
            document.classification(&classification, false);
        }
    }
    document
}

fn property_documents(
    contract: &DataContract,
    property: &SchemaProperty,
    parent_pointer: &str,
    context: &str,
    product: Option<&str>,
    domain: Option<&str>,
    documents: &mut Vec<Document>,
) {
    let Some(name) = property.name.as_deref() else { return };
    let pointer = format!("{parent_pointer}/{}", crate::json_pointer_escape(name));
    let id = format!("{}#{pointer}", contract.id);
    let mut document = Document::new(HitKind::Property, &id, name, product, domain);
    if let Some(business_name) = &property.business_name {
        document.field("name", business_name, WEIGHT_NAME);
    }
    if let Some(description) = &property.description {
        document.field("description", description, WEIGHT_DESCRIPTION);
    }
    for tag in contract.tags.iter().chain(&property.tags) {
        document.tag(tag);
    }
    if let Some(classification) = &property.classification {
        document.classification(classification, true);
    }
    document.field("context", &format!("{context} {}", pointer.trim_start_matches('/').replace('/', " ")), WEIGHT_CONTEXT);
    documents.push(document);
    let children = property.properties.iter().chain(property.items.iter().flat_map(|items| items.properties.iter()));
    for child in children {
        property_documents(contract, child, &pointer, context, product, domain, documents);
    }
}

fn classifications_of(properties: &[SchemaProperty]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack: Vec<&SchemaProperty> = properties.iter().collect();
    while let Some(property) = stack.pop() {
        if let Some(classification) = &property.classification {
            found.insert(classification.clone());
        }
        stack.extend(property.properties.iter());
        stack.extend(property.items.iter().flat_map(|items| items.properties.iter()));
    }
    found
}

impl crate::broker::Broker {
    /// The search index of the mesh as last applied (rebuilt with every apply).
    pub fn search_index(&self) -> std::sync::Arc<SearchIndex> {
        self.applied_mesh().search_index()
    }
}

#[cfg(test)]
pub(crate) mod tests;
