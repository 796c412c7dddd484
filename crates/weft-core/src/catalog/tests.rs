//! Search ranking, filters and snippets over the example mesh (no broker needed); the
//! example mesh helper is shared with other unit tests.

use super::*;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");

/// The example mesh, parsed straight into a `MeshState` (no broker needed).
pub(crate) fn example_mesh() -> MeshState {
    let mut mesh = MeshState::default();
    for dir in ["customers", "sales", "inventory", "insights"] {
        for entry in std::fs::read_dir(format!("{EXAMPLES}/{dir}")).expect("examples directory") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("example file");
            for document in weft_contract::parse_documents(&text, &path.display().to_string()).expect("example parses") {
                match document {
                    weft_contract::Document::Domain(d) => {
                        mesh.domains.insert(d.name.clone(), d);
                    }
                    weft_contract::Document::Product(p) => {
                        mesh.products.insert(p.id.clone(), *p);
                    }
                    weft_contract::Document::Contract(c) => mesh.contracts.entry(c.id.clone()).or_default().push(*c),
                    weft_contract::Document::Policy(p) => {
                        mesh.policies.insert(p.name.clone(), p);
                    }
                }
            }
        }
    }
    mesh
}

fn search(index: &SearchIndex, text: &str) -> Vec<SearchHit> {
    index.search(&SearchQuery { text, limit: SEARCH_HITS_MAX, ..SearchQuery::default() }).expect("search")
}

fn check(index: &SearchIndex, text: &str, expected_first: (&str, &str)) -> SearchHit {
    let hits = search(index, text);
    let first = hits.first().unwrap_or_else(|| panic!("no hits for {text:?}"));
    assert_eq!((first.kind.name(), first.id.as_str()), expected_first, "first hit for {text:?}: {hits:#?}");
    assert!(!first.matched.is_empty(), "a hit says why it matched");
    first.clone()
}

#[test]
fn tokenizes_words_camel_case_and_punctuation() {
    assert_eq!(tokenize("CustomerCreated"), ["customer", "created", "customercreated"]);
    assert_eq!(tokenize("sales.orders.v1"), ["sales", "orders", "v1"]);
    assert_eq!(tokenize("  ISO 3166-1 Ünïcode!"), ["iso", "3166", "1", "ünïcode"]);
    assert!(tokenize("%%% --- ").is_empty());
}

/// Proves names outrank tags and tags outrank descriptions, and that prefixes match.
#[test]
fn ranks_name_over_tag_over_description() {
    let index = SearchIndex::build(&example_mesh());
    // `email` is a property name in two contracts; the property hits come first.
    let hit = check(&index, "email", ("property", "urn:weft:customers:customer-created#/email"));
    assert_eq!(hit.matched[0].field, "name");
    // `orders` is a tag of the sale-recorded contract and a word of its stream name.
    let hits = search(&index, "orders");
    let tag_hit = hits.iter().find(|h| h.kind == HitKind::Contract).expect("the contract is found through its tag");
    let description_hit = hits.iter().find(|h| h.kind == HitKind::Property && h.matched.iter().all(|m| m.field == "context"));
    if let Some(description_hit) = description_hit {
        assert!(tag_hit.score > description_hit.score);
    }
    // A prefix finds whole words.
    check(&index, "wareh", ("property", "urn:weft:inventory:stock-levels#/warehouse"));
    // Words found in the description only.
    let hit = check(&index, "ISO alpha", ("property", "urn:weft:customers:customer-created#/country"));
    assert_eq!(hit.matched[0], MatchedField { field: "description", text: "ISO 3166-1 alpha-2 country code.".into() });
}

/// Proves a multi-word query prefers documents that match every word.
#[test]
fn documents_matching_every_word_rank_first() {
    let index = SearchIndex::build(&example_mesh());
    let hits = search(&index, "customer email");
    assert_eq!(hits[0].id, "urn:weft:customers:customer-created#/email", "{hits:#?}");
    let fields: Vec<&str> = hits[0].matched.iter().map(|m| m.field).collect();
    // `customer` matches the contract's tag `customers` by prefix; the name comes first.
    assert_eq!(fields, ["name", "tag"]);
}

#[test]
fn filters_narrow_hits_and_work_without_words() {
    let index = SearchIndex::build(&example_mesh());
    let pii = index.search(&SearchQuery { classification: Some("PII"), limit: 100, ..SearchQuery::default() }).unwrap();
    assert!(pii.iter().any(|h| h.id == "urn:weft:sales:sale-recorded#/customer/email"));
    assert!(pii.iter().all(|h| h.kind != HitKind::Domain));
    assert!(pii.iter().all(|h| h.matched == [MatchedField { field: "classification", text: "pii".into() }]));
    let sales = index.search(&SearchQuery { text: "customer", domain: Some("sales"), limit: 100, ..SearchQuery::default() }).unwrap();
    assert!(!sales.is_empty() && sales.iter().all(|h| h.domain.as_deref() == Some("sales")), "{sales:#?}");
    let tagged = index.search(&SearchQuery { text: "", tag: Some("inventory"), limit: 100, ..SearchQuery::default() }).unwrap();
    assert!(tagged.iter().any(|h| h.id == "inventory.stock-levels.v1"));
}

#[test]
fn odd_empty_and_huge_queries() {
    let index = SearchIndex::build(&example_mesh());
    let empty = index.search(&SearchQuery { text: "  ", limit: 10, ..SearchQuery::default() }).unwrap_err();
    assert_eq!(empty, SearchQueryError::Empty);
    let punctuation = index.search(&SearchQuery { text: "'\"%;--", limit: 10, ..SearchQuery::default() }).unwrap_err();
    assert_eq!(punctuation.to_string(), "q has no letters or digits to search for");
    let huge = "a".repeat(SEARCH_QUERY_BYTES_MAX + 1);
    let error = index.search(&SearchQuery { text: &huge, limit: 10, ..SearchQuery::default() }).unwrap_err();
    assert!(error.to_string().contains("limit is 1024 bytes"));
    // Odd characters around words are ignored.
    check(&index, "<email>'; DROP TABLE --", ("property", "urn:weft:customers:customer-created#/email"));
    assert!(search(&index, "zzzzzz").is_empty());
}

#[test]
fn snippets_cut_long_text_around_the_match() {
    let text = format!("{} needle {}", "a ".repeat(200), "b ".repeat(200));
    let cut = snippet(&text, "needle");
    assert!(cut.starts_with('…') && cut.ends_with('…') && cut.contains("needle"), "{cut}");
    assert!(cut.chars().count() <= SNIPPET_CHARS_MAX + 2);
    assert_eq!(snippet("short text", "text"), "short text");
    let at_start = snippet(&format!("needle {}", "c".repeat(300)), "needle");
    assert!(at_start.starts_with("needle") && at_start.ends_with('…'));
}
