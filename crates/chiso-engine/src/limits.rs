//! Bounds on analysts' queries, the same for every entry point (`chiso sql`,
//! `POST /api/sql`, the SQL console, the Postgres wire).
//!
//! A [`QueryGate`] admits at most `concurrent` queries at once; each admitted
//! query runs in a session of its own ([`Engine::bounded_context`]) whose
//! memory pool holds `memory` bytes, so one query that needs too much fails
//! with a resources error while the others go on; and each has a deadline,
//! past which its stream ends with [`Stop::Timeout`]. Dropping a stream drops
//! DataFusion's tasks, which is how a timeout, a client that went away or a
//! Postgres cancel request stop the work (the CPU goes back to idle).
//!
//! The dashboards' own queries are not analysts' queries: they are computed
//! once per store version and cached, and do not pass through the gate.

use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use chiso_exec::datafusion::error::DataFusionError;
use chiso_exec::datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
use chiso_exec::datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use chiso_exec::datafusion::prelude::SessionContext;
use futures::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Engine, EngineError};

/// How far one analyst's query may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// From admission to the last row.
    pub timeout: Duration,
    /// The memory pool of one query, in bytes (what DataFusion's operators
    /// reserve: sorts, aggregations, joins; spilling to disk where they can).
    pub memory: usize,
    /// Queries running at once; more are refused, not queued.
    pub concurrent: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            memory: 2 << 30,
            concurrent: 4,
        }
    }
}

impl QueryLimits {
    /// `2 GB`, `512 MB`: the memory limit as people read it.
    pub fn memory_text(&self) -> String {
        let mb = self.memory as f64 / (1024.0 * 1024.0);
        if mb >= 1024.0 {
            format!("{:.0} GB", mb / 1024.0)
        } else {
            format!("{mb:.0} MB")
        }
    }
}

/// Why a query stopped before its last row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stop {
    #[error("the query ran longer than {} s and was stopped", .0.as_secs_f64().round())]
    Timeout(Duration),
    #[error("the query was cancelled")]
    Cancelled,
}

/// Admission of analysts' queries: shared by every entry point of a process.
#[derive(Debug, Clone)]
pub struct QueryGate {
    limits: QueryLimits,
    slots: Arc<Semaphore>,
}

impl QueryGate {
    pub fn new(limits: QueryLimits) -> Self {
        Self {
            limits,
            slots: Arc::new(Semaphore::new(limits.concurrent.max(1))),
        }
    }

    pub fn limits(&self) -> QueryLimits {
        self.limits
    }

    /// A place for one query, or [`EngineError::Busy`] when all are taken.
    pub fn admit(&self) -> Result<Admission, EngineError> {
        let permit = Arc::clone(&self.slots)
            .try_acquire_owned()
            .map_err(|_| EngineError::Busy(self.limits.concurrent))?;
        Ok(Admission {
            limits: self.limits,
            deadline: tokio::time::Instant::now() + self.limits.timeout,
            _permit: permit,
        })
    }
}

/// One admitted query: its place and its deadline. The place is given back
/// when the admission (or the stream holding it) is dropped.
#[derive(Debug)]
pub struct Admission {
    limits: QueryLimits,
    deadline: tokio::time::Instant,
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    pub fn limits(&self) -> QueryLimits {
        self.limits
    }

    pub fn deadline(&self) -> tokio::time::Instant {
        self.deadline
    }

    /// Moves the deadline closer (a Postgres client's `statement_timeout`),
    /// never further.
    pub fn shorten(&mut self, timeout: Duration) {
        let asked = tokio::time::Instant::now() + timeout;
        if asked < self.deadline {
            self.deadline = asked;
            self.limits.timeout = timeout;
        }
    }

    /// Waits for `work` until the deadline.
    pub async fn within<T>(&self, work: impl Future<Output = T>) -> Result<T, Stop> {
        tokio::time::timeout_at(self.deadline, work)
            .await
            .map_err(|_| Stop::Timeout(self.limits.timeout))
    }
}

impl Engine {
    /// A session for one analyst's query: every table, view and function of
    /// the engine, with a memory pool of its own of `memory` bytes.
    pub fn bounded_context(&self, memory: usize) -> SessionContext {
        bounded_session(self.context.state(), memory)
    }

    /// Plans and starts an analyst's read-only query within `admission`'s
    /// bounds; the rows come as they are computed.
    pub async fn bounded_sql(
        &self,
        query: &str,
        admission: Admission,
    ) -> Result<BoundedStream, EngineError> {
        let limits = admission.limits;
        let context = self.bounded_context(limits.memory);
        let started = admission
            .within(async {
                // A function refusing to allocate past the pool while the
                // plan is simplified is a memory error too.
                let frame = Self::read_only_frame(&context, query)
                    .await
                    .map_err(|error| match error {
                        EngineError::Exhausted(detail) => EngineError::Memory {
                            limit: limits.memory_text(),
                            detail,
                        },
                        other => other,
                    })?;
                frame
                    .execute_stream()
                    .await
                    .map_err(|e| EngineError::from_execution(e, &limits))
            })
            .await
            .map_err(EngineError::Stopped)??;
        let schema = started.schema();
        let deadline = admission.deadline;
        let rows = stop_early(
            Box::pin(holding(started, admission)),
            deadline,
            limits.timeout,
            std::future::pending(),
        )
        .map(move |item| match item {
            Ok(Ok(batch)) => Ok(batch),
            Ok(Err(error)) => Err(EngineError::from_execution(error, &limits)),
            Err(stop) => Err(EngineError::Stopped(stop)),
        });
        Ok(BoundedStream {
            schema,
            rows: Box::pin(rows),
        })
    }
}

/// `state` (its tables, functions and object stores) with a memory pool of
/// its own of `memory` bytes: the session of one analyst's query. The
/// functions whose output an argument sizes (`range`, `repeat`, …) refuse
/// to make more than the pool holds ([`crate::capped`]).
pub fn bounded_session(state: SessionState, memory: usize) -> SessionContext {
    let mut runtime = state.runtime_env().as_ref().clone();
    let top_consumers = NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN);
    runtime.memory_pool = Arc::new(TrackConsumersPool::new(
        GreedyMemoryPool::new(memory),
        top_consumers,
    ));
    let capped = crate::capped::capped_functions(&state, memory);
    let context = SessionContext::new_with_state(
        SessionStateBuilder::new_from_existing(state)
            .with_runtime_env(Arc::new(runtime))
            .build(),
    );
    for function in capped {
        context.register_udf(function);
    }
    context
}

/// The rows of an analyst's query, ending with [`EngineError::Stopped`] at
/// its deadline. Dropping it, or its deadline, stops the query and frees
/// its place.
pub struct BoundedStream {
    schema: SchemaRef,
    rows: Pin<Box<dyn Stream<Item = Result<RecordBatch, EngineError>> + Send>>,
}

impl std::fmt::Debug for BoundedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedStream")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl BoundedStream {
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

impl Stream for BoundedStream {
    type Item = Result<RecordBatch, EngineError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rows.as_mut().poll_next(cx)
    }
}

/// `stream` until `stop` resolves or the deadline passes; then one last
/// item saying why, and the end (for good: polling again gives nothing).
/// The stream behind is dropped then, which is what stops the work and
/// frees what it holds (its memory, and the place in the gate of an
/// [`Admission`] it holds, see [`holding`]).
///
/// The deadline holds even if nobody polls: a Postgres cursor left open or
/// an HTTP client that stopped reading would otherwise keep the query and
/// its place forever. A timer task drops the stream behind at the deadline.
pub fn stop_early<S>(
    stream: S,
    deadline: tokio::time::Instant,
    timeout: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) -> impl Stream<Item = Result<S::Item, Stop>> + Send
where
    S: Stream + Send + Unpin + 'static,
    S::Item: Send,
{
    let slot = Arc::new(Mutex::new(Some(stream)));
    let expiry = tokio::runtime::Handle::try_current().ok().map(|runtime| {
        let slot = Arc::clone(&slot);
        let task = runtime.spawn(async move {
            tokio::time::sleep_until(deadline).await;
            // Busy means a poll is under way, which sees the deadline
            // itself; but the reader may stop right after it, so look again.
            loop {
                let taken = slot.try_lock().ok().map(|mut held| held.take());
                match taken {
                    Some(stream) => {
                        drop(stream);
                        break;
                    }
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        AbortOnDrop(task)
    });
    StoppedEarly {
        slot,
        stop: Box::pin(stop),
        sleep: Box::pin(tokio::time::sleep_until(deadline)),
        timeout,
        finished: false,
        _expiry: expiry,
    }
}

/// `stream`, holding `held` (an [`Admission`], say) for as long as it lives.
pub fn holding<S: Stream, T: Send + 'static>(stream: S, held: T) -> impl Stream<Item = S::Item> {
    stream.map(move |item| {
        let _held = &held;
        item
    })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct StoppedEarly<S, F> {
    slot: Arc<Mutex<Option<S>>>,
    stop: Pin<Box<F>>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    finished: bool,
    _expiry: Option<AbortOnDrop>,
}

impl<S, F> StoppedEarly<S, F> {
    fn finish(&mut self, why: Stop) -> Poll<Option<Result<S::Item, Stop>>>
    where
        S: Stream,
    {
        self.finished = true;
        let stream = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(stream);
        Poll::Ready(Some(Err(why)))
    }
}

impl<S, F> Stream for StoppedEarly<S, F>
where
    S: Stream + Unpin,
    F: Future<Output = ()>,
{
    type Item = Result<S::Item, Stop>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        // The deadline and the stop first: a stream that is always ready
        // must not starve them.
        if self.sleep.as_mut().poll(cx).is_ready() {
            let timeout = self.timeout;
            return self.finish(Stop::Timeout(timeout));
        }
        if self.stop.as_mut().poll(cx).is_ready() {
            return self.finish(Stop::Cancelled);
        }
        let this = &mut *self;
        let mut slot = this.slot.lock().unwrap_or_else(|e| e.into_inner());
        let polled = slot.as_mut().map(|stream| stream.poll_next_unpin(cx));
        match polled {
            // Dropped by the timer at the deadline.
            None => {
                drop(slot);
                let timeout = this.timeout;
                this.finish(Stop::Timeout(timeout))
            }
            Some(Poll::Ready(None)) => {
                let ended = slot.take();
                drop(slot);
                drop(ended);
                this.finished = true;
                Poll::Ready(None)
            }
            Some(Poll::Ready(Some(item))) => Poll::Ready(Some(Ok(item))),
            Some(Poll::Pending) => Poll::Pending,
        }
    }
}

impl EngineError {
    /// An execution error as the analyst should read it: a memory limit
    /// reached is named as such.
    pub(crate) fn from_execution(error: DataFusionError, limits: &QueryLimits) -> Self {
        match EngineError::from(error) {
            EngineError::Exhausted(detail) => EngineError::Memory {
                limit: limits.memory_text(),
                detail,
            },
            other => other,
        }
    }
}
