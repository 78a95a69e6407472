//! trussed's service on a software platform.
//!
//! Storage: `trussed::virt`'s three littlefs volumes (internal, external, volatile; 64 KiB
//! each). With a state directory the internal and external volumes are files there (every
//! write goes straight to the file, so the card survives a restart or a kill); piv-authenticator
//! and opcard keep their keys and data objects in the external one, PINs and trussed's RNG
//! state in the internal one. The volatile volume is always RAM.
//!
//! Entropy: from the OS. (trussed's own `virt::Platform` seeds with a constant: every card
//! would generate the same keys.)
//!
//! Syscalls: an application's client places a request in its channel and calls
//! [`Syscall::syscall`]; here that call runs the service on the same thread, so the reply is
//! there when it returns (trussed's "call thyself" arrangement; the virt runner instead polls
//! from a second thread every millisecond).

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use rand_chacha::ChaCha8Rng;
use rand_core::{OsRng, RngCore as _, SeedableRng as _};
use trussed::pipe::{ServiceEndpoint, TrussedChannel};
use trussed::platform::Syscall;
use trussed::types::{CoreContext, PathBuf};
use trussed::virt::{StorageConfig, Store, StoreConfig, UserInterface};
use trussed::{ClientImplementation, Service};

use crate::dispatch::{BACKENDS, Backend, Dispatch, DispatchContext};

/// The size trussed's virtual storage files must have.
const STORAGE_FILE_LEN: u64 = 512 * 128;

/// The trussed client an application gets.
pub type CardClient<'a> = ClientImplementation<'a, InlineSyscall<'a>, Dispatch>;

/// The storage: files in `state` (created and formatted when missing), or RAM.
pub fn store_config(state: Option<&Path>) -> Result<StoreConfig<'static>, String> {
    let Some(dir) = state else { return Ok(StoreConfig::ram()) };
    std::fs::create_dir_all(dir).map_err(|e| format!("--state {}: {e}", dir.display()))?;
    let file = |name: &str| {
        let path = dir.join(name);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() != STORAGE_FILE_LEN => Err(format!(
                "{}: {} bytes, not a trussed storage file ({STORAGE_FILE_LEN} bytes)",
                path.display(),
                meta.len()
            )),
            _ => Ok(StorageConfig::filesystem(path)),
        }
    };
    Ok(StoreConfig {
        internal: file("internal.bin")?,
        external: file("external.bin")?,
        volatile: StorageConfig::ram(),
    })
}

/// A software platform: OS entropy, the given storage, trussed's virtual user interface
/// (user presence always confirmed).
struct SoftPlatform<'s> {
    rng: ChaCha8Rng,
    store: Store<'s>,
    ui: UserInterface,
}

impl<'s> trussed::Platform for SoftPlatform<'s> {
    type R = ChaCha8Rng;
    type S = Store<'s>;
    type UI = UserInterface;

    fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    fn store(&self) -> Store<'s> {
        self.store
    }

    fn user_interface(&mut self) -> &mut UserInterface {
        &mut self.ui
    }
}

/// Runs the service for pending requests.
trait Serve {
    fn serve(&mut self);
}

struct Core<'s, 'c> {
    service: Service<SoftPlatform<'s>, Dispatch>,
    endpoints: [ServiceEndpoint<'c, Backend, DispatchContext>; 1],
}

impl Serve for Core<'_, '_> {
    fn serve(&mut self) {
        self.service.process(&mut self.endpoints);
    }
}

/// The client's syscall: runs the service right away.
pub struct InlineSyscall<'a>(Rc<RefCell<dyn Serve + 'a>>);

impl Syscall for InlineSyscall<'_> {
    fn syscall(&mut self) {
        self.0.borrow_mut().serve();
    }
}

/// A fresh service on `store` with one client, `client_id`, handed to `f`.
pub fn with_client<R>(store: Store<'_>, client_id: &str, f: impl FnOnce(CardClient<'_>) -> R) -> R {
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    let platform =
        SoftPlatform { rng: ChaCha8Rng::from_seed(seed), store, ui: UserInterface::new() };
    let channel = TrussedChannel::new();
    // A new channel always splits.
    #[allow(clippy::expect_used)]
    let (requester, responder) = channel.split().expect("fresh channel");
    let id = PathBuf::try_from(client_id).unwrap_or_default();
    let core = Core {
        service: Service::with_dispatch(platform, Dispatch::new()),
        endpoints: [ServiceEndpoint::new(responder, CoreContext::new(id), BACKENDS)],
    };
    let core: Rc<RefCell<dyn Serve + '_>> = Rc::new(RefCell::new(core));
    f(ClientImplementation::new(requester, InlineSyscall(core), None))
}
