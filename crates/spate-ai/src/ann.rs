//! The approximate nearest-neighbour index of a [`crate::store::Store`]: an HNSW graph from
//! USearch (unum-cloud's C++ library through its maintained Rust binding; ARCHITECTURE.md,
//! "AI", says why), keyed by a label per chunk. Vectors may be kept as f32, f16 or i8 in the
//! graph; the store keeps the f32 vectors and rescores what the graph finds, so scores are
//! exact whatever the quantisation. A filter runs inside the graph's traversal (USearch's
//! filtered search), so it applies before the top k are chosen.

use serde::{Deserialize, Serialize};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::store::Metric;

/// How vectors are kept in the graph.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    /// 4 bytes a dimension.
    #[default]
    F32,
    /// 2 bytes a dimension.
    F16,
    /// 1 byte a dimension (for cosine: vectors of unit length).
    I8,
}

/// Neighbours per node (HNSW's M).
const CONNECTIVITY: usize = 16;

/// Candidates kept while adding (HNSW's efConstruction).
const EXPANSION_ADD: usize = 128;

/// Candidates kept while searching (HNSW's ef), at least.
pub const EXPANSION_SEARCH: usize = 128;

/// The graph.
pub struct Ann {
    index: Index,
    /// Searches that may run at once (each needs a slot of its own in USearch).
    threads: usize,
}

impl std::fmt::Debug for Ann {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ann")
            .field("size", &self.index.size())
            .field("capacity", &self.index.capacity())
            .finish()
    }
}

impl Ann {
    /// An empty graph for `dimensions` compared by `metric`.
    pub fn new(
        dimensions: usize,
        metric: Metric,
        quantization: Quantization,
    ) -> Result<Ann, String> {
        let options = IndexOptions {
            dimensions,
            metric: match metric {
                Metric::Cosine => MetricKind::Cos,
                Metric::Dot => MetricKind::IP,
                Metric::Euclidean => MetricKind::L2sq,
            },
            quantization: match quantization {
                Quantization::F32 => ScalarKind::F32,
                Quantization::F16 => ScalarKind::F16,
                Quantization::I8 => ScalarKind::I8,
            },
            connectivity: CONNECTIVITY,
            expansion_add: EXPANSION_ADD,
            expansion_search: EXPANSION_SEARCH,
            multi: false,
        };
        let index = Index::new(&options).map_err(|e| format!("creating the vector index: {e}"))?;
        // Queries run on the HTTP server's threads and the index's task at once.
        let threads = std::thread::available_parallelism().map_or(4, |n| n.get()) + 4;
        let ann = Ann { index, threads };
        ann.grow(1024)?;
        Ok(ann)
    }

    fn grow(&self, capacity: usize) -> Result<(), String> {
        self.index
            .reserve_capacity_and_threads(capacity, self.threads)
            .map_err(|e| format!("growing the vector index to {capacity}: {e}"))
    }

    /// Vectors held.
    pub fn len(&self) -> usize {
        self.index.size()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `vector` as `label` (growing the graph by half when full).
    pub fn add(&mut self, label: u64, vector: &[f32]) -> Result<(), String> {
        let capacity = self.index.capacity();
        if self.index.size() + 1 > capacity {
            self.grow(capacity + capacity / 2 + 1024)?;
        }
        self.index
            .add(label, vector)
            .map_err(|e| format!("adding to the vector index: {e}"))
    }

    /// Removes `label`.
    pub fn remove(&mut self, label: u64) -> Result<(), String> {
        self.index
            .remove(label)
            .map(|_| ())
            .map_err(|e| format!("removing from the vector index: {e}"))
    }

    /// Sets how many candidates a search keeps (HNSW's ef; at least the k asked for).
    pub fn set_expansion(&self, ef: usize) {
        self.index.change_expansion_search(ef);
    }

    /// The labels of up to `count` vectors nearest `query` among those `keep` accepts.
    pub fn search(
        &self,
        query: &[f32],
        count: usize,
        keep: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<Vec<u64>, String> {
        let found = match keep {
            None => self.index.search(query, count),
            Some(keep) => self.index.filtered_search(query, count, keep),
        }
        .map_err(|e| format!("searching the vector index: {e}"))?;
        Ok(found.keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn the_graph_finds_removes_and_filters_in_every_quantisation() {
        for q in [Quantization::F32, Quantization::F16, Quantization::I8] {
            let mut ann = Ann::new(3, Metric::Cosine, q).expect("an index");
            // More than the first reservation: the graph grows.
            for i in 0..3000u64 {
                let angle = i as f32 / 3000.0 * std::f32::consts::FRAC_PI_2;
                ann.add(i, &unit(&[angle.cos(), angle.sin(), 0.1]))
                    .expect("added");
            }
            assert_eq!(ann.len(), 3000);
            let query = unit(&[1.0, 0.0, 0.1]);
            let near = ann.search(&query, 3, None).expect("searched");
            assert_eq!(near.len(), 3);
            assert!(near.iter().all(|l| *l < 10), "{q:?}: {near:?}");
            ann.remove(0).expect("removed");
            assert!(!ann.search(&query, 5, None).expect("searched").contains(&0));
            let odd = |l: u64| l % 2 == 1;
            let filtered = ann.search(&query, 5, Some(&odd)).expect("searched");
            assert_eq!(filtered.len(), 5);
            assert!(filtered.iter().all(|l| l % 2 == 1), "{q:?}: {filtered:?}");
        }
    }
}
