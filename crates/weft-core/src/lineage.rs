//! Lineage: which data flows where, as declared by the products and as observed by the server,
//! and where the two disagree.
//!
//! **Declared** lineage comes from ODPS ports: a product's output port publishes a contract
//! whose topics are streams (`product -> stream`, relation `output`), and an input port names a
//! contract whose streams the product reads (`stream -> product`, relation `input`). So product
//! B's output feeding product A's input is `B -> stream -> A`.
//!
//! **Observed** lineage comes from the server's measurements: the producers that wrote to a
//! stream (`principal -> stream`, `produces`; from `StreamActivity`, since the server started)
//! and the consumer groups that read it (`stream -> group`, `consumes`; live HTTP group members,
//! and committed offsets in the metadata store, which include the Kafka listener's groups).
//!
//! Until governance authenticates principals, a producer or group is **attributed** to a
//! product when its name is the product's id, the last `:`-separated segment of the id
//! (`urn:weft:product:sales` -> `sales`) or the product's name. Disagreements:
//! * `declared_not_observed`: a declared input that no group attributed to the product has read;
//!   a declared output that no producer has written since the server started;
//! * `observed_not_declared`: a group attributed to a product reads a stream the product does
//!   not declare as an input; a group attributed to no product reads a stream that no product
//!   declares as an input; a producer attributed to one product writes another product's stream.
//!
//! The graph around a product is cut at `depth` product hops (`LINEAGE_DEPTH_MAX` at most).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use weft_contract::DataProduct;

use crate::broker::Broker;
use crate::error::Error;
use crate::mesh::{MeshState, topic_streams};

/// Product hops shown around a product when the caller does not say.
pub const LINEAGE_DEPTH_DEFAULT: u32 = 2;
/// Most product hops a lineage request may ask for.
pub const LINEAGE_DEPTH_MAX: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeKind {
    Product,
    Stream,
    Principal,
    Group,
}

impl NodeKind {
    /// The name the edges show (snake case).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Product => "product",
            Self::Stream => "stream",
            Self::Principal => "principal",
            Self::Group => "group",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageNode {
    pub id: String,
    pub kind: NodeKind,
    pub label: String,
    pub domain: Option<String>,
    /// For principals and groups: the product they are attributed to, if any.
    pub product: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EdgeKind {
    Declared,
    Observed,
}

impl EdgeKind {
    /// The name the edges show (snake case).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Declared => "declared",
            Self::Observed => "observed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Relation {
    Input,
    Output,
    Produces,
    Consumes,
}

impl Relation {
    /// The name the edges show (snake case).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
            Self::Produces => "produces",
            Self::Consumes => "consumes",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineageEdge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    pub relation: Relation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DisagreementKind {
    DeclaredNotObserved,
    ObservedNotDeclared,
}

impl DisagreementKind {
    /// The name the edges show (snake case).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeclaredNotObserved => "declared_not_observed",
            Self::ObservedNotDeclared => "observed_not_declared",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Disagreement {
    pub kind: DisagreementKind,
    pub from: String,
    pub to: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageGraph {
    pub root: String,
    pub nodes: Vec<LineageNode>,
    pub edges: Vec<LineageEdge>,
    pub disagreements: Vec<Disagreement>,
}

/// What the server has seen: per stream, who wrote to it and which groups read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedLineage {
    pub producers: BTreeMap<String, BTreeSet<String>>,
    pub consumers: BTreeMap<String, BTreeSet<String>>,
}

pub fn product_node_id(id: &str) -> String {
    format!("product:{id}")
}
pub fn stream_node_id(name: &str) -> String {
    format!("stream:{name}")
}
fn principal_node_id(name: &str) -> String {
    format!("principal:{name}")
}
fn group_node_id(name: &str) -> String {
    format!("group:{name}")
}

/// The streams a product declares as outputs and as inputs.
pub fn declared_streams(mesh: &MeshState, product: &DataProduct) -> (Vec<String>, Vec<String>) {
    let outputs = product
        .output_ports
        .iter()
        .filter_map(|p| p.contract_id.as_deref())
        .filter_map(|id| mesh.contract(id))
        .flat_map(topic_streams)
        .collect();
    let inputs = product.input_ports.iter().filter_map(|p| mesh.contract(&p.contract_id)).flat_map(topic_streams).collect();
    (outputs, inputs)
}

/// The product a principal or group name is attributed to (see the module docs).
pub fn attributed_product<'a>(mesh: &'a MeshState, name: &str) -> Option<&'a DataProduct> {
    mesh.catalog_products()
        .into_iter()
        .find(|product| product.id == name || product.id.rsplit(':').next() == Some(name) || product.name.as_deref() == Some(name))
}

/// The lineage graph around `root`, or `None` if no such product is applied.
pub fn lineage_of(mesh: &MeshState, observed: &ObservedLineage, root: &str, depth: u32) -> Option<LineageGraph> {
    mesh.catalog_product(root)?;
    let depth = depth.min(LINEAGE_DEPTH_MAX);
    let declared: BTreeMap<&str, (Vec<String>, Vec<String>)> =
        mesh.catalog_products().into_iter().map(|p| (p.id.as_str(), declared_streams(mesh, p))).collect();
    let mut writers_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut readers_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (product, (outputs, inputs)) in &declared {
        for stream in outputs {
            writers_of.entry(stream).or_default().insert(product);
        }
        for stream in inputs {
            readers_of.entry(stream).or_default().insert(product);
        }
    }
    // Products within `depth` hops, upstream or downstream.
    let mut included: BTreeSet<&str> = BTreeSet::from([root]);
    let mut queue = VecDeque::from([(root, 0u32)]);
    while let Some((product, hops)) = queue.pop_front() {
        if hops == depth {
            continue;
        }
        let (outputs, inputs) = &declared[product];
        let neighbours =
            outputs.iter().flat_map(|s| readers_of.get(s.as_str())).chain(inputs.iter().flat_map(|s| writers_of.get(s.as_str())));
        for neighbour in neighbours.flatten() {
            if included.insert(neighbour) {
                queue.push_back((neighbour, hops + 1));
            }
        }
    }
    let mut graph = GraphBuilder::default();
    let domain_of_stream = |stream: &str| {
        mesh.contract_of_stream(stream)
            .and_then(|c| c.domain.clone().or_else(|| mesh.product_of_contract(&c.id).and_then(|p| p.domain.clone())))
    };
    let mut streams: BTreeSet<&str> = BTreeSet::new();
    for &product_id in &included {
        let product = mesh.catalog_product(product_id).expect("included products are in the catalog");
        graph.node(LineageNode {
            id: product_node_id(product_id),
            kind: NodeKind::Product,
            label: product.name.clone().unwrap_or_else(|| product_id.to_string()),
            domain: product.domain.clone(),
            product: None,
        });
        let (outputs, inputs) = &declared[product_id];
        for stream in outputs {
            graph.edge(product_node_id(product_id), stream_node_id(stream), EdgeKind::Declared, Relation::Output);
            streams.insert(stream);
        }
        for stream in inputs {
            graph.edge(stream_node_id(stream), product_node_id(product_id), EdgeKind::Declared, Relation::Input);
            streams.insert(stream);
        }
    }
    let empty = BTreeSet::new();
    for &stream in &streams {
        graph.node(LineageNode {
            id: stream_node_id(stream),
            kind: NodeKind::Stream,
            label: stream.to_string(),
            domain: domain_of_stream(stream),
            product: None,
        });
        let producers = observed.producers.get(stream).unwrap_or(&empty);
        for principal in producers {
            let attributed = attributed_product(mesh, principal);
            graph.node(LineageNode {
                id: principal_node_id(principal),
                kind: NodeKind::Principal,
                label: principal.clone(),
                domain: attributed.and_then(|p| p.domain.clone()),
                product: attributed.map(|p| p.id.clone()),
            });
            graph.edge(principal_node_id(principal), stream_node_id(stream), EdgeKind::Observed, Relation::Produces);
            let declaring = writers_of.get(stream);
            if let Some(attributed) = attributed
                && declaring.is_some_and(|writers| !writers.contains(attributed.id.as_str()))
            {
                graph.disagree(
                    DisagreementKind::ObservedNotDeclared,
                    principal_node_id(principal),
                    stream_node_id(stream),
                    format!(
                        "principal {principal} (attributed to product {}) writes stream {stream}, which that product does not declare as an output",
                        attributed.id
                    ),
                );
            }
        }
        if producers.is_empty() {
            for writer in writers_of.get(stream).into_iter().flatten().filter(|w| included.contains(*w)) {
                graph.disagree(
                    DisagreementKind::DeclaredNotObserved,
                    product_node_id(writer),
                    stream_node_id(stream),
                    format!(
                        "product {writer} declares output stream {stream}, but nothing has been written to it since the server started"
                    ),
                );
            }
        }
        let consumers = observed.consumers.get(stream).unwrap_or(&empty);
        for group in consumers {
            let attributed = attributed_product(mesh, group);
            graph.node(LineageNode {
                id: group_node_id(group),
                kind: NodeKind::Group,
                label: group.clone(),
                domain: attributed.and_then(|p| p.domain.clone()),
                product: attributed.map(|p| p.id.clone()),
            });
            graph.edge(stream_node_id(stream), group_node_id(group), EdgeKind::Observed, Relation::Consumes);
            let readers = readers_of.get(stream);
            match attributed {
                Some(product) if readers.is_none_or(|r| !r.contains(product.id.as_str())) => graph.disagree(
                    DisagreementKind::ObservedNotDeclared,
                    stream_node_id(stream),
                    group_node_id(group),
                    format!(
                        "group {group} (attributed to product {}) reads stream {stream}, which that product does not declare as an input",
                        product.id
                    ),
                ),
                None if readers.is_none() => graph.disagree(
                    DisagreementKind::ObservedNotDeclared,
                    stream_node_id(stream),
                    group_node_id(group),
                    format!("group {group} reads stream {stream}, but no data product declares it as an input"),
                ),
                _ => {}
            }
        }
        for reader in readers_of.get(stream).into_iter().flatten().filter(|r| included.contains(*r)) {
            let observed_reader = consumers.iter().any(|group| attributed_product(mesh, group).is_some_and(|p| p.id == *reader));
            if !observed_reader {
                let short = reader.rsplit(':').next().unwrap_or(reader);
                graph.disagree(
                    DisagreementKind::DeclaredNotObserved,
                    stream_node_id(stream),
                    product_node_id(reader),
                    format!(
                        "product {reader} declares input stream {stream}, but no consumer group attributed to it has read it (name the group {short:?})"
                    ),
                );
            }
        }
    }
    Some(graph.finish(root))
}

#[derive(Default)]
struct GraphBuilder {
    nodes: BTreeMap<String, LineageNode>,
    edges: BTreeSet<LineageEdge>,
    disagreements: BTreeSet<Disagreement>,
}

impl GraphBuilder {
    fn node(&mut self, node: LineageNode) {
        self.nodes.entry(node.id.clone()).or_insert(node);
    }

    fn edge(&mut self, from: String, to: String, kind: EdgeKind, relation: Relation) {
        self.edges.insert(LineageEdge { from, to, kind, relation });
    }

    fn disagree(&mut self, kind: DisagreementKind, from: String, to: String, message: String) {
        self.disagreements.insert(Disagreement { kind, from, to, message });
    }

    fn finish(self, root: &str) -> LineageGraph {
        let mut nodes: Vec<LineageNode> = self.nodes.into_values().collect();
        nodes.sort_by(|a, b| a.kind.cmp(&b.kind).then_with(|| a.id.cmp(&b.id)));
        LineageGraph {
            root: root.to_string(),
            nodes,
            edges: self.edges.into_iter().collect(),
            disagreements: self.disagreements.into_iter().collect(),
        }
    }
}

impl Broker {
    /// Producers and consumer groups seen per stream (see the module docs).
    pub fn observed_lineage(&self) -> Result<ObservedLineage, Error> {
        let mut observed = ObservedLineage::default();
        for stream in self.streams() {
            let producers = stream.activity().producers();
            if !producers.is_empty() {
                observed.producers.insert(stream.name().to_string(), producers.into_iter().collect());
            }
        }
        for (group, stream) in self.meta().groups()?.into_iter().chain(self.groups().subscriptions()) {
            observed.consumers.entry(stream).or_default().insert(group);
        }
        Ok(observed)
    }

    /// The lineage graph around a product, or `None` if it is not applied.
    pub fn lineage(&self, product_id: &str, depth: u32) -> Result<Option<LineageGraph>, Error> {
        let observed = self.observed_lineage()?;
        Ok(lineage_of(&self.mesh(), &observed, product_id, depth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSIGHTS: &str = "urn:weft:product:customer-sales-insights";

    fn observed(producers: &[(&str, &str)], consumers: &[(&str, &str)]) -> ObservedLineage {
        let mut observed = ObservedLineage::default();
        for (stream, principal) in producers {
            observed.producers.entry(stream.to_string()).or_default().insert(principal.to_string());
        }
        for (stream, group) in consumers {
            observed.consumers.entry(stream.to_string()).or_default().insert(group.to_string());
        }
        observed
    }

    fn disagreements(graph: &LineageGraph) -> Vec<(DisagreementKind, &str, &str)> {
        graph.disagreements.iter().map(|d| (d.kind, d.from.as_str(), d.to.as_str())).collect()
    }

    /// Proves declared lineage: the derived product's three inputs come from the three source
    /// products, through their streams.
    #[test]
    fn declared_inputs_of_the_derived_product() {
        let mesh = crate::catalog::tests::example_mesh();
        let graph = lineage_of(&mesh, &ObservedLineage::default(), INSIGHTS, 1).expect("the product exists");
        for (product, stream) in [
            ("urn:weft:product:sales", "sales.orders.v1"),
            ("urn:weft:product:customers", "customers.customer-created.v1"),
            ("urn:weft:product:inventory", "inventory.stock-levels.v1"),
        ] {
            let output = LineageEdge {
                from: product_node_id(product),
                to: stream_node_id(stream),
                kind: EdgeKind::Declared,
                relation: Relation::Output,
            };
            let input = LineageEdge {
                from: stream_node_id(stream),
                to: product_node_id(INSIGHTS),
                kind: EdgeKind::Declared,
                relation: Relation::Input,
            };
            assert!(graph.edges.contains(&output) && graph.edges.contains(&input), "{graph:#?}");
        }
        // Nothing observed yet: every declared flow is a disagreement.
        let found = disagreements(&graph);
        assert!(found.contains(&(
            DisagreementKind::DeclaredNotObserved,
            "stream:sales.orders.v1",
            "product:urn:weft:product:customer-sales-insights"
        )));
        assert!(found.contains(&(DisagreementKind::DeclaredNotObserved, "product:urn:weft:product:sales", "stream:sales.orders.v1")));
        // Depth 0 keeps the root only, with its streams.
        let root_only = lineage_of(&mesh, &ObservedLineage::default(), INSIGHTS, 0).unwrap();
        assert_eq!(root_only.nodes.iter().filter(|n| n.kind == NodeKind::Product).count(), 1);
        assert!(lineage_of(&mesh, &ObservedLineage::default(), "urn:nope", 2).is_none());
    }

    /// Proves observed flows that match declarations clear the disagreement, and observed flows
    /// that no declaration covers are reported.
    #[test]
    fn observed_flows_against_declarations() {
        let mesh = crate::catalog::tests::example_mesh();
        let observed = observed(
            &[("sales.orders.v1", "sales"), ("customers.customer-created.v1", "inventory")],
            &[("sales.orders.v1", "customer-sales-insights"), ("sales.orders.v1", "fraud-checker"), ("inventory.stock-levels.v1", "sales")],
        );
        let graph = lineage_of(&mesh, &observed, INSIGHTS, 2).unwrap();
        let found = disagreements(&graph);
        // Declared and observed: no disagreement for sales orders read by insights or written by sales.
        assert!(!found.iter().any(|(_, from, to)| *from == "stream:sales.orders.v1" && to.starts_with("product:")), "{found:#?}");
        assert!(!found.iter().any(|(_, from, _)| *from == "product:urn:weft:product:sales"));
        // Customers' stream is written by a principal attributed to inventory.
        assert!(found.contains(&(DisagreementKind::ObservedNotDeclared, "principal:inventory", "stream:customers.customer-created.v1")));
        // A group attributed to sales reads inventory's stream without declaring it.
        assert!(found.contains(&(DisagreementKind::ObservedNotDeclared, "stream:inventory.stock-levels.v1", "group:sales")));
        // An unattributed reader of a stream that insights declares is not a disagreement.
        assert!(!found.iter().any(|(_, _, to)| *to == "group:fraud-checker"));
        // Still not observed: insights reading customers and inventory.
        assert!(found.contains(&(
            DisagreementKind::DeclaredNotObserved,
            "stream:inventory.stock-levels.v1",
            "product:urn:weft:product:customer-sales-insights"
        )));
        let group = graph.nodes.iter().find(|n| n.id == "group:customer-sales-insights").expect("the group node");
        assert_eq!(group.product.as_deref(), Some(INSIGHTS));
        let consumes = LineageEdge {
            from: "stream:sales.orders.v1".into(),
            to: "group:customer-sales-insights".into(),
            kind: EdgeKind::Observed,
            relation: Relation::Consumes,
        };
        assert!(graph.edges.contains(&consumes));
    }

    #[test]
    fn a_reader_of_an_undeclared_stream_is_reported() {
        let mesh = crate::catalog::tests::example_mesh();
        let observed = observed(&[], &[("insights.customer-revenue.v1", "dashboard")]);
        let graph = lineage_of(&mesh, &observed, INSIGHTS, 1).unwrap();
        let disagreement = graph.disagreements.iter().find(|d| d.to == "group:dashboard").expect("reported");
        assert_eq!(disagreement.kind, DisagreementKind::ObservedNotDeclared);
        assert!(disagreement.message.contains("no data product declares it as an input"));
    }
}
