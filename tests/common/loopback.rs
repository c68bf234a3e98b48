//! An actix-web server on `127.0.0.1:<free port>`, on its own thread and actix System,
//! so it works from any test runtime: the base of the loopback fakes (venue, model).
//! (Shared with the benchmarks through `#[path]`.)

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

/// A running loopback server; stops when dropped.
pub struct LoopbackServer {
    /// Where it listens.
    pub addr: SocketAddr,
    handle: Option<ServerHandle>,
    stopped: mpsc::Receiver<()>,
}

impl LoopbackServer {
    /// Starts a one-worker server whose routes `configure` sets up, and returns once it
    /// accepts connections. Panics (test setup) if it cannot bind.
    pub fn start<F>(name: &str, configure: F) -> LoopbackServer
    where
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stopped_tx, stopped_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(async move {
                    let bound = HttpServer::new(move || App::new().configure(configure.clone()))
                        .workers(1)
                        .disable_signals()
                        .shutdown_timeout(1)
                        .bind(("127.0.0.1", 0));
                    let server = match bound {
                        Ok(server) => server,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let addr = server.addrs().first().copied();
                    let running = server.run();
                    let _ = ready_tx.send(match addr {
                        Some(addr) => Ok((addr, running.handle())),
                        None => Err("no address bound".to_string()),
                    });
                    let _ = running.await;
                });
                let _ = stopped_tx.send(());
            })
            .unwrap_or_else(|e| panic!("{name} thread: {e}"));
        let (addr, handle) = match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(ready)) => ready,
            Ok(Err(e)) => panic!("{name} could not start: {e}"),
            Err(e) => panic!("{name} did not start: {e}"),
        };
        LoopbackServer {
            addr,
            handle: Some(handle),
            stopped: stopped_rx,
        }
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            // The stop command is sent when `stop` is called; its future only waits
            // for completion, which the thread's exit signals below.
            drop(handle.stop(false));
        }
        let _ = self.stopped.recv_timeout(Duration::from_secs(5));
    }
}
