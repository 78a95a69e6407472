//! Time for the PIN cache, passed in (DESIGN.md: time is passed in) so that timed cache
//! policies are tested without sleeping.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A monotonic clock.
pub trait Clock: Send + std::fmt::Debug {
    /// Now.
    fn now(&self) -> Instant;
}

/// The system's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to ([`ManualClock::advance`]); clones share the time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    base: Instant,
    offset: Arc<Mutex<Duration>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock standing at the time it was made.
    pub fn new() -> Self {
        Self { base: Instant::now(), offset: Arc::new(Mutex::new(Duration::ZERO)) }
    }

    /// Moves the clock (and every clone) forward.
    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *offset = offset.saturating_add(by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let offset = *self.offset.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.base.checked_add(offset).unwrap_or(self.base)
    }
}
