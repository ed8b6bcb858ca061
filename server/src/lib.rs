//! `sluice serve`: the TCP line protocol server over the durable log (documented in `docs/protocol.md`).
//!
//! Each connection reads one JSON request per line and writes one JSON reply per request,
//! plus pushed rows for its subscriptions (`connection.rs`). Each op's request, reply and
//! handling is in a file of `op/`; [`protocol`] gives clients the types. Publishes go
//! through one writer thread that takes every publish waiting, appends them all, syncs the
//! logs once and then acknowledges them (group commit, `publisher.rs`); its queue is
//! bounded, so a producer that outruns the disk waits for its acknowledgements. The state
//! behind it all is in `core/`.

mod connection;
mod core;
mod op;
pub mod protocol;
mod publisher;
pub mod throttle;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use sluice_engine::EngineError;
use sluice_engine::limits::{PLANNING_STACK_BYTES, with_planning_stack};
use sluice_log::{LogConfig, LogError};
use sluice_sql::SqlError;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

pub use self::core::Core;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Request(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("{0} is in use by another sluice process")]
    InUse(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
}

/// When publishes are made durable before they are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Each group of waiting publishes is synced before any of them is acknowledged.
    EveryBatch,
    /// The logs are synced at most this often; publishes are acknowledged after the sync.
    Interval(Duration),
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Required (`{"op":"auth","token":...}`) before any other request when set.
    pub token: Option<String>,
    pub max_line_bytes: usize,
    pub max_connections: usize,
    pub durability: Durability,
    pub log: LogConfig,
    /// Connections speak TLS with these settings when set (`tls::server_config`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How often the queries' state is checkpointed; never when `None`.
    pub checkpoint_interval: Option<Duration>,
    /// Whether a checkpoint's state is saved by a forked child (holding ingest only for the
    /// fork) rather than in the server's process, holding ingest for the whole save.
    pub checkpoint_in_child: bool,
    /// Whether SIGTERM and Ctrl-C stop the server (see [`serve`]).
    pub stop_on_signal: bool,
}

/// What connections share.
pub(crate) struct Shared {
    pub core: Mutex<Core>,
    /// The streams' logs, appended to without the core (`core/streams.rs`).
    pub streams: Arc<core::SharedStreams>,
    /// Signalled (with `core`) whenever the feeder has fed publishes to the queries.
    pub fed: Condvar,
    /// Woken after every append, for subscriptions waiting for rows.
    pub appended: Notify,
    pub config: ServeConfig,
    pub publisher: publisher::Handle,
    pub auth_throttle: throttle::AuthThrottle,
    /// Set once the server is stopping: publishes are refused from then on.
    pub stopping: AtomicBool,
    /// Publishes sent to the publisher and not answered yet.
    pub publishing: AtomicUsize,
}

/// Runs the server until it is told to stop (SIGTERM or Ctrl-C): then it refuses new
/// publishes, lets the ones already taken be fed, takes a final checkpoint (when checkpoints
/// are on) and returns. `ready` is told the address it listens on.
pub fn serve(
    config: ServeConfig,
    ready: impl FnOnce(SocketAddr) + Send + 'static,
) -> Result<(), ServeError> {
    // Opening replays the catalog's statements, and requests plan statements on the
    // runtime's threads: both get a stack for the deepest statement the limits accept.
    let core = with_planning_stack(|| {
        Core::open(
            &config.data_dir,
            config.log,
            config.checkpoint_interval.is_some(),
        )
    })??;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(PLANNING_STACK_BYTES)
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(config.listen).await?;
        ready(listener.local_addr()?);
        let streams = core.shared_streams();
        let shared = Arc::new_cyclic(|weak| Shared {
            streams: Arc::clone(&streams),
            fed: Condvar::new(),
            core: Mutex::new(core),
            appended: Notify::new(),
            publisher: publisher::start(weak.clone(), config.durability),
            auth_throttle: Default::default(),
            config: config.clone(),
            stopping: AtomicBool::new(false),
            publishing: AtomicUsize::new(0),
        });
        publisher::start_feeder(Arc::downgrade(&shared), streams);
        let slots = Arc::new(Semaphore::new(config.max_connections));
        let retention = Arc::clone(&shared);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                if let Ok(mut core) = retention.core.lock()
                    && let Err(error) = core.enforce_retention()
                {
                    eprintln!("retention: {error}");
                }
            }
        });
        if let Some(interval) = config.checkpoint_interval {
            let checkpoints = Arc::clone(&shared);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(interval).await;
                    let checkpoints = Arc::clone(&checkpoints);
                    let taken = tokio::task::spawn_blocking(move || checkpoint(&checkpoints)).await;
                    if let Ok(Err(error)) = taken {
                        eprintln!("checkpoint: {error}");
                    }
                }
            });
        }
        let acceptor = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let mut stop = std::pin::pin!(stop_signal(config.stop_on_signal));
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut stop => break,
            };
            let (socket, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    eprintln!("accept: {error}");
                    continue;
                }
            };
            // Replies and rows go out at once, not held back to fill a packet.
            let _ = socket.set_nodelay(true);
            let shared = Arc::clone(&shared);
            let slot = Arc::clone(&slots).try_acquire_owned().ok();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let limit = shared.config.max_connections;
                match (acceptor, slot) {
                    (None, Some(_slot)) => connection::run(socket, peer.ip(), shared).await,
                    (None, None) => connection::refuse(socket, limit).await,
                    (Some(acceptor), slot) => {
                        let Some(socket) = tls::handshake(&acceptor, socket).await else {
                            return;
                        };
                        match slot {
                            Some(_slot) => connection::run(socket, peer.ip(), shared).await,
                            None => connection::refuse(socket, limit).await,
                        }
                    }
                }
            });
        }
        eprintln!("sluice: stopping");
        shared.stopping.store(true, Ordering::SeqCst);
        let stopping = Arc::clone(&shared);
        tokio::task::spawn_blocking(move || finish(&stopping))
            .await
            .map_err(|e| ServeError::Request(e.to_string()))??;
        eprintln!("sluice: stopped");
        Ok(())
    })
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT) when `watch`, never otherwise.
async fn stop_signal(watch: bool) {
    use tokio::signal::unix::{SignalKind, signal};
    if !watch {
        return std::future::pending().await;
    }
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            eprintln!("cannot watch for SIGTERM: {error}");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Takes a checkpoint once every acknowledged publish has been fed: the state is saved
/// holding the core, and written to disk without it.
fn checkpoint(shared: &Shared) -> Result<(), ServeError> {
    let unavailable = || ServeError::Request("the server's state is unavailable".into());
    let acknowledged = shared.streams.lock()?.durable_stamp();
    let pending = {
        let mut core = shared.core.lock().map_err(|_| unavailable())?;
        while core.fed_stamp() < acknowledged {
            core = shared.fed.wait(core).map_err(|_| unavailable())?;
        }
        core.prepare_checkpoint(shared.config.checkpoint_in_child)
    };
    let written = pending.and_then(core::checkpoint::PendingCheckpoint::write);
    shared
        .core
        .lock()
        .map_err(|_| unavailable())?
        .checkpoint_written(written)
}

/// Waits until the publisher has answered every publish it took and the feeder has fed
/// them, then takes the final checkpoint.
fn finish(shared: &Shared) -> Result<(), ServeError> {
    while shared.publishing.load(Ordering::SeqCst) > 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    if shared.config.checkpoint_interval.is_some() {
        checkpoint(shared)?;
    }
    Ok(())
}
