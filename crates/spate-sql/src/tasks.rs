//! A continuous job's tasks, shared by the workers that run the job. A job with parallelism P
//! has one task (P = 1: the whole flow over every partition of its sources) or P tasks per
//! stage (see [`crate::stages`]). Its tasks are the partitions of the job's task topic
//! `spate-sql-<job>-tasks`; every worker running the job joins the consumer group
//! `spate-sql-<job>-workers` on it, and the group coordinator's assignment (cooperative-sticky)
//! says which worker runs which tasks — Kafka's own membership, no other coordination.
//!
//! A task given away is stopped first (its last checkpoint commits, in the revocation
//! callback); its new owner restores the state from the task's changelog partition. Each task
//! has its own transactional id, so a worker that lost its tasks without knowing it (a
//! stalled process) is fenced by the new owner's first transaction: its outputs abort.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;

use crate::catalog::Table;
use crate::errors::SqlError;
use crate::format::Encoder;
use crate::job::{self, Cluster, JobMetrics, JobOptions, Output, Task, TaskInput};
use crate::plan::Planned;
use crate::stages;

/// Plans the job's query again: each task runs its own copy of the operators.
pub type Planner = Arc<dyn Fn() -> Result<Planned, SqlError> + Send + Sync>;

/// A continuous job, as its workers run it.
#[derive(Clone)]
pub struct JobSpec {
    /// Plans the query.
    pub plan: Planner,
    /// The table the results go to.
    pub sink: Arc<Table>,
    /// Its id, checkpoint interval, parallelism, ...
    pub options: JobOptions,
}

/// The task topic of job `id`.
pub fn tasks_topic(id: &str) -> String {
    format!("spate-sql-{id}-tasks")
}

impl JobSpec {
    /// How many stages the job's flow has (1 without parallelism).
    fn stages(&self) -> Result<usize, SqlError> {
        if self.options.parallelism <= 1 {
            return Ok(1);
        }
        Ok(stages::split((self.plan)()?.flow).len())
    }

    /// Task `k`: stage `k / P`, its `k % P`th task.
    fn task(&self, k: usize) -> Result<Task, SqlError> {
        let id = &self.options.id;
        let planned = (self.plan)()?;
        let sink = Output::Topic(
            Box::new(Encoder::new(Arc::clone(&self.sink))?),
            self.sink.topic.clone(),
        );
        let parallelism = self.options.parallelism.max(1);
        if parallelism == 1 {
            return Ok(Task::whole(planned, sink, id));
        }
        let p = parallelism as usize;
        let (stage_index, index) = (k / p, k % p);
        let sources = planned.sources;
        let stage = stages::split(planned.flow)
            .into_iter()
            .nth(stage_index)
            .ok_or_else(|| SqlError::Runtime(format!("job {id} has no task {k}")))?;
        let inputs = stage
            .inputs
            .iter()
            .map(|input| match input {
                stages::StageInput::Source(j) => TaskInput::Source {
                    table: Arc::clone(&sources[*j].table),
                    share: Some((index as i32, parallelism)),
                },
                stages::StageInput::Exchange(n) => TaskInput::Exchange {
                    topic: stages::exchange_topic(id, *n),
                    partition: index as i32,
                    upstream: p,
                },
            })
            .collect();
        let output = match stage.exchange {
            None => sink,
            Some(keys) => Output::Exchange {
                topic: stages::exchange_topic(id, stage_index),
                partitions: parallelism,
                keys,
            },
        };
        let (group, transactional_id, changelog) = job::job_names(id);
        Ok(Task {
            flow: stage.flow,
            inputs,
            output,
            limit: None,
            group,
            transactional_id: format!("{transactional_id}-{k}"),
            changelog: (changelog, k as i32),
            index,
        })
    }
}

/// A task running on this worker.
struct Running {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<(), SqlError>>,
    metrics: Arc<JobMetrics>,
}

impl Running {
    /// Stops it; its last checkpoint commits.
    fn stop(self) -> Result<(), SqlError> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| SqlError::Runtime("a task panicked".into()))?
    }
}

/// The worker's share of a job: its running tasks, and what the group gave it.
struct Share {
    running: Mutex<HashMap<usize, Running>>,
    /// Tasks assigned but not started yet.
    assigned: Mutex<Vec<usize>>,
    /// A task that failed while being stopped for a rebalance.
    failed: Mutex<Option<SqlError>>,
    /// Counters of tasks that stopped here, so the job's totals keep them.
    retired: JobMetrics,
}

impl Share {
    fn retire(&self, k: usize, running: Running) {
        let metrics = Arc::clone(&running.metrics);
        match running.stop() {
            Ok(()) => {}
            Err(SqlError::Fenced(e)) => tracing::info!("task {k} moved to another worker: {e}"),
            Err(e) => {
                self.failed.lock().get_or_insert(e);
            }
        }
        add_counters(&self.retired, &metrics);
    }
}

/// The group member's context: tasks revoked are stopped before the rebalance completes.
struct Membership(Arc<Share>);

impl rdkafka::ClientContext for Membership {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!("librdkafka: {error}: {reason}");
    }
}

impl ConsumerContext for Membership {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            for e in tpl.elements() {
                let k = e.partition() as usize;
                self.0.assigned.lock().retain(|a| *a != k);
                let running = self.0.running.lock().remove(&k);
                if let Some(running) = running {
                    self.0.retire(k, running);
                }
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let mut assigned = self.0.assigned.lock();
            for e in tpl.elements() {
                assigned.push(e.partition() as usize);
            }
        }
    }
}

fn add_counters(total: &JobMetrics, m: &JobMetrics) {
    for (t, v) in counters(total).into_iter().zip(counters(m)) {
        t.fetch_add(v.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Creates the job's topics: its task topic, its changelog (a partition per task) and, with
/// parallelism, an exchange topic per stage but the last. Returns the number of tasks.
pub fn prepare(cluster: &Cluster, spec: &JobSpec) -> Result<usize, SqlError> {
    let stages = spec.stages()?;
    let parallelism = spec.options.parallelism.max(1);
    let tasks = stages * parallelism as usize;
    let id = &spec.options.id;
    let (_, _, changelog) = job::job_names(id);
    job::ensure_changelog(cluster, &changelog, tasks as i32)?;
    if parallelism > 1 {
        for s in 0..stages - 1 {
            job::create_topic(cluster, &stages::exchange_topic(id, s), parallelism, &[])?;
        }
    }
    job::create_topic(cluster, &tasks_topic(id), tasks as i32, &[])?;
    Ok(tasks)
}

/// Runs this worker's share of the job until `stop`: joins the job's worker group and runs
/// the tasks it is given. `metrics` gets the job's totals over this worker's tasks.
pub fn run_job(
    cluster: &Cluster,
    spec: &JobSpec,
    stop: &AtomicBool,
    metrics: &JobMetrics,
) -> Result<(), SqlError> {
    let tasks = prepare(cluster, spec)?;
    let id = &spec.options.id;
    let parallelism = spec.options.parallelism.max(1) as usize;
    let share = Arc::new(Share {
        running: Mutex::new(HashMap::new()),
        assigned: Mutex::new(Vec::new()),
        failed: Mutex::new(None),
        retired: JobMetrics::new(),
    });
    let mut config = cluster.config();
    config
        .set("group.id", format!("spate-sql-{id}-workers"))
        .set("enable.auto.commit", "false")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000");
    let consumer: BaseConsumer<Membership> = config
        .create_with_context(Membership(Arc::clone(&share)))
        .map_err(|e| SqlError::Io(format!("joining the job's workers: {e}")))?;
    consumer
        .subscribe(&[&tasks_topic(id)])
        .map_err(|e| SqlError::Io(format!("joining the job's workers: {e}")))?;
    let result = (|| {
        while !stop.load(Ordering::Relaxed) {
            // The task topic holds no records: polling serves the group (and its callbacks).
            if let Some(Err(e)) = consumer.poll(Duration::from_millis(200)) {
                tracing::debug!(job = %id, "the job's worker group: {e}");
            }
            if let Some(e) = share.failed.lock().take() {
                return Err(e);
            }
            let start: Vec<usize> = std::mem::take(&mut *share.assigned.lock());
            for k in start.into_iter().filter(|k| *k < tasks) {
                if share.running.lock().contains_key(&k) {
                    continue;
                }
                let task = spec.task(k)?;
                let stop = Arc::new(AtomicBool::new(false));
                let task_metrics = Arc::new(JobMetrics::new());
                let thread = {
                    let (cluster, options) = (cluster.clone(), spec.options.clone());
                    let (stop, metrics) = (Arc::clone(&stop), Arc::clone(&task_metrics));
                    std::thread::Builder::new()
                        .name(format!("sql-{id}-{k}"))
                        .spawn(move || job::run_task(&cluster, task, &options, &stop, &metrics))
                        .map_err(|e| SqlError::Io(format!("starting a task's thread: {e}")))?
                };
                share.running.lock().insert(
                    k,
                    Running {
                        stop,
                        thread,
                        metrics: task_metrics,
                    },
                );
            }
            // A task that ended by itself: fenced (moved) is restarted if still ours; else
            // the job failed.
            let ended: Vec<usize> = share
                .running
                .lock()
                .iter()
                .filter(|(_, r)| r.thread.is_finished())
                .map(|(k, _)| *k)
                .collect();
            for k in ended {
                let Some(running) = share.running.lock().remove(&k) else {
                    continue;
                };
                share.retire(k, running);
                if let Some(e) = share.failed.lock().take() {
                    return Err(e);
                }
                let mine = consumer
                    .assignment()
                    .map(|a| a.elements().iter().any(|e| e.partition() as usize == k))
                    .unwrap_or(false);
                if mine {
                    share.assigned.lock().push(k);
                }
            }
            totals(&share, parallelism, tasks, metrics);
        }
        Ok(())
    })();
    // Stop what still runs (each commits its last checkpoint), then leave the group.
    let running: Vec<(usize, Running)> = share.running.lock().drain().collect();
    for (k, r) in running {
        share.retire(k, r);
    }
    totals(&share, parallelism, tasks, metrics);
    consumer.unsubscribe();
    result?;
    match share.failed.lock().take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A job's counters, in one order.
fn counters(m: &JobMetrics) -> [&std::sync::atomic::AtomicU64; 5] {
    [
        &m.records_in,
        &m.records_out,
        &m.late_dropped,
        &m.skipped,
        &m.checkpoints,
    ]
}

/// The job's metrics over this worker's tasks: counters summed (tasks count only what they
/// read from sources and wrote to the sink); the watermark is the sink stage's smallest.
fn totals(share: &Share, parallelism: usize, tasks: usize, total: &JobMetrics) {
    let running = share.running.lock();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let retired = counters(&share.retired);
    for (i, t) in counters(total).iter().enumerate() {
        let live: u64 = running
            .values()
            .map(|r| load(counters(&r.metrics)[i]))
            .sum();
        t.store(load(retired[i]) + live, Ordering::Relaxed);
    }
    total.tasks.store(running.len() as u64, Ordering::Relaxed);
    let state: u64 = running
        .values()
        .map(|r| load(&r.metrics.state_entries))
        .sum();
    total.state_entries.store(state, Ordering::Relaxed);
    let max_us = running
        .values()
        .map(|r| load(&r.metrics.checkpoint_us))
        .max()
        .unwrap_or(0);
    total.checkpoint_us.store(max_us, Ordering::Relaxed);
    let lags: Vec<i64> = running
        .values()
        .map(|r| r.metrics.lag_records.load(Ordering::Relaxed))
        .filter(|l| *l >= 0)
        .collect();
    let lag = if lags.is_empty() {
        -1
    } else {
        lags.iter().sum()
    };
    total.lag_records.store(lag, Ordering::Relaxed);
    let watermark = running
        .iter()
        .filter(|(k, _)| **k + parallelism >= tasks)
        .map(|(_, r)| r.metrics.watermark_ms.load(Ordering::Relaxed))
        .min()
        .unwrap_or(i64::MIN);
    total.watermark_ms.store(watermark, Ordering::Relaxed);
}
