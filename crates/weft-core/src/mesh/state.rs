//! The applied mesh in memory: `MeshState` (domains, products, contracts, policies, and the
//! implicit products derived from them) and `AppliedMesh`, the component that holds the current
//! snapshot with its search index and serializes applies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use weft_contract::{CompiledContract, DataContract, DataProduct, Domain, Policy};

use crate::catalog::SearchIndex;

/// The mesh component's state: the applied mesh, the search index built from it, and the lock
/// that makes applies one at a time. Readers take a snapshot (`current`); only `apply` and
/// `load_mesh` replace it, and the search index is rebuilt with every replacement, so the two
/// never disagree for long.
#[derive(Default)]
pub(crate) struct AppliedMesh {
    state: RwLock<Arc<MeshState>>,
    search_index: RwLock<Arc<SearchIndex>>,
    apply_lock: Mutex<()>,
}

impl AppliedMesh {
    /// The mesh as last applied.
    pub(crate) fn current(&self) -> Arc<MeshState> {
        Arc::clone(&self.state.read().unwrap_or_else(|poison| poison.into_inner()))
    }

    /// The search index of the mesh as last applied.
    pub(crate) fn search_index(&self) -> Arc<SearchIndex> {
        Arc::clone(&self.search_index.read().unwrap_or_else(|poison| poison.into_inner()))
    }

    /// Makes `next` the applied mesh and rebuilds the search index from it.
    pub(super) fn replace(&self, next: MeshState) {
        let index = Arc::new(SearchIndex::build(&next));
        *self.state.write().unwrap_or_else(|poison| poison.into_inner()) = Arc::new(next);
        *self.search_index.write().unwrap_or_else(|poison| poison.into_inner()) = index;
    }

    /// Held for the whole of one apply (plan and commit).
    pub(super) fn lock_for_apply(&self) -> MutexGuard<'_, ()> {
        self.apply_lock.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Everything applied so far, in memory (the metadata store holds the durable copy).
#[derive(Debug, Default, Clone)]
pub struct MeshState {
    pub domains: BTreeMap<String, Domain>,
    pub products: BTreeMap<String, DataProduct>,
    pub policies: BTreeMap<String, Policy>,
    /// Contract id -> every applied version, in apply order.
    pub contracts: BTreeMap<String, Vec<DataContract>>,
    /// Contracts that no applied product publishes, each standing as its own data product
    /// (`DataProduct::implicit_for`), keyed by the contract id. Derived from the rest, never
    /// stored: `refresh_implicit_products` after every change. When an ODPS product lists the
    /// contract as an output port, that product takes over (the stream and its history stay).
    pub implicit_products: BTreeMap<String, DataProduct>,
}

impl MeshState {
    /// Recomputes `implicit_products` from the contracts and the applied products.
    pub(crate) fn refresh_implicit_products(&mut self) {
        let published: BTreeSet<&str> =
            self.products.values().flat_map(|p| p.output_ports.iter().filter_map(|port| port.contract_id.as_deref())).collect();
        let implicit = self
            .contracts
            .values()
            .filter_map(|versions| versions.last())
            .filter(|contract| !published.contains(contract.id.as_str()) && !self.products.contains_key(&contract.id))
            .map(|contract| (contract.id.clone(), DataProduct::implicit_for(contract)))
            .collect();
        self.implicit_products = implicit;
    }

    /// Every product the catalog shows, applied and implicit, ordered by id.
    pub fn catalog_products(&self) -> Vec<&DataProduct> {
        let mut products: Vec<&DataProduct> = self.products.values().chain(self.implicit_products.values()).collect();
        products.sort_by(|a, b| a.id.cmp(&b.id));
        products
    }

    /// A product the catalog shows, applied or implicit.
    pub fn catalog_product(&self, id: &str) -> Option<&DataProduct> {
        self.products.get(id).or_else(|| self.implicit_products.get(id))
    }

    /// The catalog product that publishes a contract: its ODPS product, or the contract itself
    /// standing as a product.
    pub fn catalog_product_of_contract(&self, contract_id: &str) -> Option<&DataProduct> {
        self.product_of_contract(contract_id).or_else(|| self.implicit_products.get(contract_id))
    }

    /// Is `id` a contract standing as its own product (no ODPS product publishes it)?
    pub fn is_implicit_product(&self, id: &str) -> bool {
        self.implicit_products.contains_key(id)
    }

    /// The latest version of a contract.
    pub fn contract(&self, id: &str) -> Option<&DataContract> {
        self.contracts.get(id).and_then(|versions| versions.last())
    }

    /// A specific version of a contract.
    pub fn contract_version(&self, id: &str, version: &str) -> Option<&DataContract> {
        self.contracts.get(id).and_then(|versions| versions.iter().find(|c| c.version == version))
    }

    /// The product whose output port publishes a contract.
    pub fn product_of_contract(&self, contract_id: &str) -> Option<&DataProduct> {
        self.products.values().find(|p| p.output_ports.iter().any(|port| port.contract_id.as_deref() == Some(contract_id)))
    }

    /// Products that declare a contract as an input.
    pub fn readers_of_contract(&self, contract_id: &str) -> Vec<String> {
        self.products.values().filter(|p| p.input_ports.iter().any(|port| port.contract_id == contract_id)).map(|p| p.id.clone()).collect()
    }

    /// The contract id that governs a stream now, if any.
    pub fn contract_of_stream(&self, stream: &str) -> Option<&DataContract> {
        self.contracts.values().filter_map(|versions| versions.last()).find(|contract| topic_streams(contract).iter().any(|s| s == stream))
    }
}

/// Stream names of a contract's topic objects.
pub fn topic_streams(contract: &DataContract) -> Vec<String> {
    CompiledContract::compile_topics(contract)
        .map(|compiled| compiled.iter().filter_map(|c| c.stream_name().map(str::to_string)).collect())
        .unwrap_or_default()
}
