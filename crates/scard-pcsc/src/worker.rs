//! The deadline of every exchange. pcsc-lite's `SCardTransmit` (and `SCardBeginTransaction`,
//! `SCardControl`, ...) can block for as long as the card or another application likes, so
//! each connection runs its blocking calls on a thread of its own and the caller waits on a
//! channel with the deadline. When the deadline passes the caller gets
//! [`TransportError::Timeout`] and the connection is unusable from then on (the stuck call
//! may still complete: its answer is dropped, and the thread then releases the connection
//! and ends). Nothing here knows about PC/SC: the state `S` is built on the thread by `init`
//! and every job borrows it.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use scard_transport::TransportError;

use crate::Error;

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// How long dropping a (not stuck) worker waits for the thread to release its state.
const DROP_WAIT: Duration = Duration::from_secs(2);

/// A thread owning a connection's state, running one job at a time.
pub(crate) struct Worker<S> {
    reader: String,
    jobs: Option<Sender<Job<S>>>,
    done: Receiver<()>,
    stuck: Option<(String, Duration)>,
}

impl<S> std::fmt::Debug for Worker<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("reader", &self.reader)
            .field("open", &self.jobs.is_some())
            .field("stuck", &self.stuck)
            .finish()
    }
}

impl<S: 'static> Worker<S> {
    /// Starts the thread, builds the state there with `init` (named `what` in a timeout
    /// error) and returns the worker with what `init` returned besides the state.
    pub(crate) fn spawn<R, I>(
        reader: &str,
        what: &str,
        timeout: Duration,
        init: I,
    ) -> Result<(Worker<S>, R), TransportError>
    where
        R: Send + 'static,
        I: FnOnce() -> Result<(S, R), TransportError> + Send + 'static,
    {
        let (job_tx, job_rx) = mpsc::channel::<Job<S>>();
        let (init_tx, init_rx) = mpsc::sync_channel::<Result<R, TransportError>>(1);
        let (done_tx, done_rx) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name(format!("scard-pcsc {reader}"))
            .spawn(move || {
                let mut state = match init() {
                    Ok((state, r)) => {
                        let _ = init_tx.send(Ok(r));
                        state
                    }
                    Err(err) => {
                        let _ = init_tx.send(Err(err));
                        let _ = done_tx.send(());
                        return;
                    }
                };
                drop(init_tx);
                // Ends when the worker is dropped or gives up on a stuck job.
                while let Ok(job) = job_rx.recv() {
                    job(&mut state);
                }
                drop(state);
                let _ = done_tx.send(());
            })
            .map_err(|source| TransportError::Io { reader: reader.to_owned(), source })?;
        match init_rx.recv_timeout(timeout) {
            Ok(Ok(r)) => Ok((
                Worker {
                    reader: reader.to_owned(),
                    jobs: Some(job_tx),
                    done: done_rx,
                    stuck: None,
                },
                r,
            )),
            Ok(Err(err)) => Err(err),
            // Dropping `job_tx` here lets the thread release whatever `init` still builds.
            Err(RecvTimeoutError::Timeout) => Err(TransportError::Timeout {
                reader: reader.to_owned(),
                command: what.to_owned(),
                after: timeout,
            }),
            Err(RecvTimeoutError::Disconnected) => Err(ended(reader)),
        }
    }

    /// Runs `job` on the thread and waits at most `timeout` for its result. On timeout the
    /// worker is marked stuck: this and every later call fail, `command` names the command in
    /// the error.
    pub(crate) fn call<T, F>(
        &mut self,
        command: impl FnOnce() -> String,
        timeout: Duration,
        job: F,
    ) -> Result<T, TransportError>
    where
        T: Send + 'static,
        F: FnOnce(&mut S) -> Result<T, TransportError> + Send + 'static,
    {
        if let Some((command, after)) = &self.stuck {
            return Err(TransportError::Io {
                reader: self.reader.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    Error::Unusable { command: command.clone(), after: *after },
                ),
            });
        }
        let Some(jobs) = &self.jobs else {
            return Err(TransportError::NoCard { reader: self.reader.clone() });
        };
        let (tx, rx) = mpsc::sync_channel::<Result<T, TransportError>>(1);
        let sent = jobs.send(Box::new(move |state: &mut S| {
            let _ = tx.send(job(state));
        }));
        if sent.is_err() {
            return Err(ended(&self.reader));
        }
        match rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => {
                let command = command();
                tracing::warn!(
                    "{}: no answer to {command} within {timeout:?}; the connection is unusable",
                    self.reader
                );
                self.stuck = Some((command.clone(), timeout));
                // The thread ends (and releases the connection) once the stuck call returns.
                self.jobs = None;
                Err(TransportError::Timeout {
                    reader: self.reader.clone(),
                    command,
                    after: timeout,
                })
            }
            Err(RecvTimeoutError::Disconnected) => Err(ended(&self.reader)),
        }
    }

    /// Whether a call timed out (the connection is unusable).
    pub(crate) fn is_stuck(&self) -> bool {
        self.stuck.is_some()
    }
}

impl<S> Drop for Worker<S> {
    fn drop(&mut self) {
        // Closing the queue ends the thread, which releases the state (disconnects). Wait a
        // little for that so a connection dropped here is gone for the next one, but never
        // for a thread stuck in a call.
        self.jobs = None;
        if self.stuck.is_none() {
            let _ = self.done.recv_timeout(DROP_WAIT);
        }
    }
}

fn ended(reader: &str) -> TransportError {
    TransportError::Io {
        reader: reader.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::BrokenPipe, Error::WorkerEnded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    /// A fake connection whose "card" blocks until the test releases it, and which records
    /// that it was released (as a real one disconnects).
    struct Fake {
        gate: Arc<Mutex<Receiver<()>>>,
        log: Log,
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            self.log.lock().unwrap().push("released");
        }
    }

    type Log = Arc<Mutex<Vec<&'static str>>>;

    fn fake() -> (Worker<Fake>, Sender<()>, Log) {
        let (open, gate) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = Arc::clone(&log);
        let (worker, greeting) =
            Worker::spawn("pcsc:Fake 00 00", "SCardConnect", Duration::from_secs(5), move || {
                Ok((Fake { gate: Arc::new(Mutex::new(gate)), log: log2 }, "hello"))
            })
            .unwrap();
        assert_eq!(greeting, "hello");
        (worker, open, log)
    }

    #[test]
    fn answers_within_the_deadline() {
        let (mut w, _open, log) = fake();
        let answer = w.call(|| "ECHO".into(), Duration::from_secs(5), |_f: &mut Fake| Ok(42));
        assert_eq!(answer.unwrap(), 42);
        let err = w
            .call(
                || "X".into(),
                Duration::from_secs(5),
                |_f: &mut Fake| -> Result<(), _> {
                    Err(TransportError::CardRemoved { reader: "r".into() })
                },
            )
            .unwrap_err();
        assert!(matches!(err, TransportError::CardRemoved { .. }));
        assert!(!w.is_stuck());
        drop(w);
        // Dropping a healthy worker waits for the release.
        assert_eq!(*log.lock().unwrap(), ["released"]);
    }

    #[test]
    fn the_thread_hop_is_cheap() {
        let (mut w, _open, _log) = fake();
        let mut micros: Vec<u128> = (0..1000)
            .map(|_| {
                let started = Instant::now();
                w.call(|| "X".into(), Duration::from_secs(5), |_f: &mut Fake| Ok(())).unwrap();
                started.elapsed().as_micros()
            })
            .collect();
        micros.sort_unstable();
        println!("worker round trip: median {} µs", micros[500]);
        assert!(micros[500] < 5_000, "median {} µs", micros[500]);
    }

    #[test]
    fn a_blocked_call_times_out_and_the_connection_is_unusable() {
        let (mut w, open, log) = fake();
        let started = Instant::now();
        let err = w
            .call(
                || "SELECT (INS A4)".into(),
                Duration::from_millis(200),
                |f: &mut Fake| -> Result<Vec<u8>, TransportError> {
                    // Blocks like an SCardTransmit to a card that never answers.
                    let _ = f.gate.lock().unwrap().recv();
                    f.log.lock().unwrap().push("answered late");
                    Ok(vec![0x90, 0x00])
                },
            )
            .unwrap_err();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200) && took < Duration::from_secs(2), "{took:?}");
        let TransportError::Timeout { reader, command, after } = &err else { panic!("{err:?}") };
        assert_eq!(reader, "pcsc:Fake 00 00");
        assert_eq!(command, "SELECT (INS A4)");
        assert_eq!(*after, Duration::from_millis(200));
        assert_eq!(err.to_string(), "pcsc:Fake 00 00: no answer to SELECT (INS A4) within 200ms");
        assert!(w.is_stuck());
        // Later calls fail at once, naming what timed out; nothing is sent to the thread.
        let started = Instant::now();
        let again = w.call(|| "GET DATA".into(), Duration::from_secs(5), |_f: &mut Fake| Ok(()));
        assert!(started.elapsed() < Duration::from_millis(100));
        let Err(TransportError::Io { source, .. }) = &again else { panic!("{again:?}") };
        assert_eq!(source.kind(), std::io::ErrorKind::TimedOut);
        assert!(source.to_string().contains("SELECT (INS A4)"), "{source}");
        // Dropping a stuck worker does not wait for it.
        let started = Instant::now();
        drop(w);
        assert!(started.elapsed() < Duration::from_millis(100));
        assert!(log.lock().unwrap().is_empty());
        // When the card finally answers, the answer is dropped and the connection released.
        open.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while log.lock().unwrap().len() < 2 {
            assert!(Instant::now() < deadline, "the thread never released its state");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(*log.lock().unwrap(), ["answered late", "released"]);
    }

    #[test]
    fn a_blocked_init_times_out_and_is_released_later() {
        let (open, gate) = mpsc::channel::<()>();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = Arc::clone(&log);
        let started = Instant::now();
        let err = Worker::<Fake>::spawn("pcsc:R", "SCardConnect", Duration::from_millis(100), {
            move || {
                let _ = gate.recv();
                let gate = Arc::new(Mutex::new(mpsc::channel().1));
                Ok((Fake { gate, log: log2 }, ()))
            }
        })
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(
            matches!(&err, TransportError::Timeout { command, .. } if command == "SCardConnect"),
            "{err:?}"
        );
        open.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while log.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "late connection never released");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn init_errors_are_returned() {
        let err = Worker::<Fake>::spawn("pcsc:R", "SCardConnect", Duration::from_secs(5), || {
            Err::<(Fake, ()), _>(TransportError::NoCard { reader: "pcsc:R".into() })
        })
        .unwrap_err();
        assert!(matches!(err, TransportError::NoCard { .. }));
    }
}
