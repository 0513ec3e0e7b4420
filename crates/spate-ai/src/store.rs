//! The vectors of an index: chunks of the records of a topic, each with its vector, text,
//! metadata and source (topic, partition, offset, key), upserted and deleted by record key (a
//! record's chunks are replaced together), searched by a metric with a metadata filter applied
//! before the top k are chosen, within a namespace.
//!
//! Small stores (up to [`EXACT_UP_TO`] chunks) are searched exactly: every vector of the
//! namespace that passes the filter is scored. Larger ones ask their HNSW graph
//! ([`crate::ann`]) for candidates, with the namespace and filter applied inside the graph's
//! traversal, and rescore them from the f32 vectors; when the graph gives fewer than asked
//! (a filter few chunks pass), the exact search answers instead.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::ann::{Ann, Quantization};
use crate::filter::Filter;

/// How vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Cosine similarity (higher is nearer).
    Cosine,
    /// Dot product (higher is nearer).
    Dot,
    /// Euclidean distance (lower is nearer).
    Euclidean,
}

impl Metric {
    /// Parses `cosine`, `dot` (`dotproduct`, `dot-product`) or `euclidean`.
    pub fn parse(name: &str) -> Result<Metric, String> {
        match name.to_ascii_lowercase().as_str() {
            "cosine" => Ok(Metric::Cosine),
            "dot" | "dotproduct" | "dot-product" | "dot_product" => Ok(Metric::Dot),
            "euclidean" | "l2" => Ok(Metric::Euclidean),
            other => Err(format!(
                "unknown metric `{other}` (cosine, dot or euclidean)"
            )),
        }
    }

    /// The score of `b` for query `a` (for cosine both are already unit length).
    pub fn score(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::Cosine | Metric::Dot => a.iter().zip(b).map(|(x, y)| x * y).sum(),
            Metric::Euclidean => a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>()
                .sqrt(),
        }
    }

    /// Whether score `a` is nearer than score `b`.
    pub fn nearer(self, a: f32, b: f32) -> bool {
        match self {
            Metric::Euclidean => a < b,
            _ => a > b,
        }
    }
}

/// Where a chunk came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
}

/// One chunk of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// `<record key>#<chunk number>`.
    pub id: String,
    /// The chunk's text.
    pub text: String,
    /// Its vector (unit length for cosine).
    pub vector: Vec<f32>,
    /// The record's metadata fields.
    pub metadata: Map<String, Json>,
    /// Where it came from.
    pub source: Source,
}

/// A record's chunks, as one upsert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// The record key.
    pub key: String,
    /// Its namespace ("" when none).
    pub namespace: String,
    /// Its chunks.
    pub chunks: Vec<Chunk>,
}

/// A search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit<'a> {
    /// Its score by the index's metric.
    pub score: f32,
    /// The record key.
    pub key: &'a str,
    /// The namespace.
    pub namespace: &'a str,
    /// The chunk.
    pub chunk: &'a Chunk,
}

/// Chunks up to which a store is searched exactly.
pub const EXACT_UP_TO: usize = 1000;

/// The documents of one index.
#[derive(Debug)]
pub struct Store {
    dimensions: usize,
    metric: Metric,
    documents: HashMap<String, Document>,
    chunks: usize,
    /// Documents in a namespace other than "".
    namespaced: usize,
    ann: Ann,
    /// The graph's label of each chunk: label → (document key, chunk index).
    labels: HashMap<u64, (String, usize)>,
    /// Each document's labels, in chunk order.
    document_labels: HashMap<String, Vec<u64>>,
    next_label: u64,
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

impl Store {
    /// An empty store of `dimensions`-long vectors compared by `metric`, kept in the graph
    /// as `quantization` says.
    pub fn new(
        dimensions: usize,
        metric: Metric,
        quantization: Quantization,
    ) -> Result<Store, String> {
        Ok(Store {
            dimensions,
            metric,
            documents: HashMap::new(),
            chunks: 0,
            namespaced: 0,
            ann: Ann::new(dimensions, metric, quantization)?,
            labels: HashMap::new(),
            document_labels: HashMap::new(),
            next_label: 0,
        })
    }

    /// The vectors' length.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// How vectors are compared.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Documents held.
    pub fn documents(&self) -> usize {
        self.documents.len()
    }

    /// Chunks (vectors) held.
    pub fn chunks(&self) -> usize {
        self.chunks
    }

    /// The document of `key`.
    pub fn get(&self, key: &str) -> Option<&Document> {
        self.documents.get(key)
    }

    /// Sets how many candidates a graph search keeps (HNSW's ef).
    pub fn set_expansion(&self, ef: usize) {
        self.ann.set_expansion(ef);
    }

    /// Puts `document` in place of the one with its key (all its chunks replaced). Vectors of
    /// the wrong length are refused; for cosine they are scaled to unit length.
    pub fn upsert(&mut self, mut document: Document) -> Result<(), String> {
        for chunk in &mut document.chunks {
            if chunk.vector.len() != self.dimensions {
                return Err(format!(
                    "`{}` has {} dimensions; the index has {}",
                    chunk.id,
                    chunk.vector.len(),
                    self.dimensions
                ));
            }
            if self.metric == Metric::Cosine {
                normalize(&mut chunk.vector);
            }
        }
        self.delete(&document.key);
        let mut labels = Vec::with_capacity(document.chunks.len());
        for (i, chunk) in document.chunks.iter().enumerate() {
            let label = self.next_label;
            self.next_label += 1;
            self.ann.add(label, &chunk.vector)?;
            self.labels.insert(label, (document.key.clone(), i));
            labels.push(label);
        }
        self.chunks += document.chunks.len();
        if !document.namespace.is_empty() {
            self.namespaced += 1;
        }
        self.document_labels.insert(document.key.clone(), labels);
        self.documents.insert(document.key.clone(), document);
        Ok(())
    }

    /// Removes the document of `key`; whether there was one.
    pub fn delete(&mut self, key: &str) -> bool {
        let Some(old) = self.documents.remove(key) else {
            return false;
        };
        self.chunks -= old.chunks.len();
        if !old.namespace.is_empty() {
            self.namespaced -= 1;
        }
        for label in self.document_labels.remove(key).unwrap_or_default() {
            self.labels.remove(&label);
            // A label the graph lost is not searched anyway: the map above decides.
            if let Err(e) = self.ann.remove(label) {
                tracing::warn!("{e}");
            }
        }
        true
    }

    /// The `top_k` chunks nearest `query` in `namespace` among those passing `filter`,
    /// nearest first.
    pub fn search(
        &self,
        query: &[f32],
        top_k: usize,
        namespace: &str,
        filter: Option<&Filter>,
    ) -> Result<Vec<Hit<'_>>, String> {
        if query.len() != self.dimensions {
            return Err(format!(
                "the query vector has {} dimensions; the index has {}",
                query.len(),
                self.dimensions
            ));
        }
        let mut query = query.to_vec();
        if self.metric == Metric::Cosine {
            normalize(&mut query);
        }
        if self.chunks <= EXACT_UP_TO {
            return Ok(self.exact(&query, top_k, namespace, filter));
        }
        let hit = |label: u64| -> Option<(&Document, &Chunk)> {
            let (key, i) = self.labels.get(&label)?;
            let document = self.documents.get(key)?;
            Some((document, document.chunks.get(*i)?))
        };
        let keep = |label: u64| {
            hit(label).is_some_and(|(d, c)| {
                d.namespace == namespace && filter.is_none_or(|f| f.matches(&c.metadata))
            })
        };
        let restricted = filter.is_some() || !namespace.is_empty() || self.namespaced > 0;
        let labels = self.ann.search(
            &query,
            top_k,
            restricted.then_some(&keep as &dyn Fn(u64) -> bool),
        )?;
        let mut hits: Vec<Hit<'_>> = labels
            .into_iter()
            .filter_map(|label| {
                let (document, chunk) = hit(label)?;
                Some(Hit {
                    score: self.metric.score(&query, &chunk.vector),
                    key: &document.key,
                    namespace: &document.namespace,
                    chunk,
                })
            })
            .collect();
        if hits.len() < top_k {
            // Fewer than asked: few chunks pass the filter, or the graph missed some. The
            // exact search says which.
            return Ok(self.exact(&query, top_k, namespace, filter));
        }
        self.rank(&mut hits, top_k);
        Ok(hits)
    }

    /// Every chunk scored: the exact answer.
    fn exact(
        &self,
        query: &[f32],
        top_k: usize,
        namespace: &str,
        filter: Option<&Filter>,
    ) -> Vec<Hit<'_>> {
        let mut hits: Vec<Hit<'_>> = Vec::new();
        for document in self.documents.values() {
            if document.namespace != namespace {
                continue;
            }
            for chunk in &document.chunks {
                if filter.is_some_and(|f| !f.matches(&chunk.metadata)) {
                    continue;
                }
                hits.push(Hit {
                    score: self.metric.score(query, &chunk.vector),
                    key: &document.key,
                    namespace: &document.namespace,
                    chunk,
                });
            }
        }
        self.rank(&mut hits, top_k);
        hits
    }

    /// Sorts nearest first (ties by id) and keeps `top_k`.
    fn rank(&self, hits: &mut Vec<Hit<'_>>, top_k: usize) {
        let metric = self.metric;
        hits.sort_by(|a, b| {
            if metric.nearer(a.score, b.score) {
                std::cmp::Ordering::Less
            } else if metric.nearer(b.score, a.score) {
                std::cmp::Ordering::Greater
            } else {
                a.chunk.id.cmp(&b.chunk.id)
            }
        });
        hits.truncate(top_k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(key: &str, namespace: &str, vectors: &[(Vec<f32>, Json)]) -> Document {
        Document {
            key: key.into(),
            namespace: namespace.into(),
            chunks: vectors
                .iter()
                .enumerate()
                .map(|(i, (v, m))| Chunk {
                    id: format!("{key}#{i}"),
                    text: format!("{key} chunk {i}"),
                    vector: v.clone(),
                    metadata: m.as_object().cloned().unwrap_or_default(),
                    source: Source {
                        topic: "t".into(),
                        partition: 0,
                        offset: 0,
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn upserts_replace_a_records_chunks_and_deletes_remove_them() {
        let mut store = Store::new(2, Metric::Cosine, Quantization::F32).expect("a store");
        store
            .upsert(doc(
                "a",
                "",
                &[(vec![1.0, 0.0], json!({})), (vec![0.0, 1.0], json!({}))],
            ))
            .expect("upsert");
        store
            .upsert(doc("b", "", &[(vec![1.0, 1.0], json!({}))]))
            .expect("upsert");
        assert_eq!((store.documents(), store.chunks()), (2, 3));
        store
            .upsert(doc("a", "", &[(vec![0.0, 2.0], json!({}))]))
            .expect("upsert");
        assert_eq!((store.documents(), store.chunks()), (2, 2));
        let hits = store.search(&[1.0, 0.0], 10, "", None).expect("search");
        let ids: Vec<&str> = hits.iter().map(|h| h.chunk.id.as_str()).collect();
        assert_eq!(ids, ["b#0", "a#0"]);
        assert!((hits[0].score - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert!(store.delete("b"));
        assert!(!store.delete("b"));
        assert_eq!((store.documents(), store.chunks()), (1, 1));
        let e = store
            .upsert(doc("c", "", &[(vec![1.0], json!({}))]))
            .expect_err("dims");
        assert!(e.contains("1 dimensions; the index has 2"), "{e}");
    }

    #[test]
    fn search_filters_before_the_top_k_within_a_namespace() {
        let mut store = Store::new(2, Metric::Euclidean, Quantization::F32).expect("a store");
        for i in 0..10 {
            let v = vec![i as f32, 0.0];
            store
                .upsert(doc(
                    &format!("k{i}"),
                    "",
                    &[(v, json!({"even": i % 2 == 0}))],
                ))
                .expect("upsert");
        }
        store
            .upsert(doc("other", "ns", &[(vec![0.0, 0.0], json!({}))]))
            .expect("upsert");
        let filter = Filter::parse(&json!({"even": false})).expect("filter");
        let hits = store
            .search(&[0.0, 0.0], 3, "", Some(&filter))
            .expect("search");
        let keys: Vec<&str> = hits.iter().map(|h| h.key).collect();
        assert_eq!(keys, ["k1", "k3", "k5"]);
        assert_eq!(hits[0].score, 1.0);
        let hits = store.search(&[0.0, 0.0], 3, "ns", None).expect("search");
        assert_eq!(hits.len(), 1);
        assert!(store.search(&[0.0], 3, "", None).is_err());
    }

    #[test]
    fn a_large_store_searches_its_graph_with_the_filter_inside_and_matches_exact_search() {
        let mut seed = 42u64;
        let mut random = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let mut store = Store::new(16, Metric::Cosine, Quantization::F16).expect("a store");
        let n = EXACT_UP_TO * 3;
        for i in 0..n {
            let v: Vec<f32> = (0..16).map(|_| random()).collect();
            let tag = if i % 100 == 1 { "rare" } else { "common" };
            store
                .upsert(doc(&format!("d{i}"), "", &[(v, json!({"tag": tag}))]))
                .expect("upserted");
        }
        // Half deleted: the graph forgets them too.
        for i in (0..n).step_by(2) {
            assert!(store.delete(&format!("d{i}")));
        }
        assert_eq!(store.chunks(), n / 2);
        let mut found = 0;
        let queries = 50;
        for _ in 0..queries {
            let q: Vec<f32> = (0..16).map(|_| random()).collect();
            let mut unit = q.clone();
            normalize(&mut unit);
            let graph: Vec<String> = store
                .search(&q, 10, "", None)
                .expect("searched")
                .iter()
                .map(|h| h.chunk.id.clone())
                .collect();
            let exact: Vec<String> = store
                .exact(&unit, 10, "", None)
                .iter()
                .map(|h| h.chunk.id.clone())
                .collect();
            assert_eq!(graph.len(), 10);
            found += graph.iter().filter(|id| exact.contains(id)).count();
            // Only odd documents are left, and a filter few pass still fills the top k.
            let rare_filter = Filter::parse(&json!({"tag": "rare"})).expect("a filter");
            let rare = store
                .search(&q, 10, "", Some(&rare_filter))
                .expect("searched");
            assert_eq!(rare.len(), 10);
            assert!(rare.iter().all(|h| h.chunk.metadata["tag"] == "rare"));
        }
        let recall = found as f64 / (10 * queries) as f64;
        assert!(recall >= 0.95, "recall@10 {recall}");
    }

    #[test]
    fn metrics_parse_by_their_common_names() {
        assert_eq!(Metric::parse("COSINE"), Ok(Metric::Cosine));
        assert_eq!(Metric::parse("dotproduct"), Ok(Metric::Dot));
        assert_eq!(Metric::parse("l2"), Ok(Metric::Euclidean));
        assert!(Metric::parse("hamming").is_err());
        assert_eq!(Metric::Dot.score(&[1.0, 2.0], &[3.0, 4.0]), 11.0);
    }
}
