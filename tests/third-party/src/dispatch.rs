//! The trussed backends behind both applications, and the routing of requests to them.
//!
//! trussed answers core requests itself; the applications also use syscall *extensions* that
//! only backends implement: PINs with retry counters (`trussed-auth`, implemented by
//! `trussed-auth-backend`), chunked file I/O, key wrapping to files and HPKE
//! (`trussed-staging`). RSA is a backend that takes over the core requests for RSA mechanisms
//! (`trussed-rsa-alloc`). A runner numbers the extensions it offers ([`ExtensionId`]) and
//! routes each request to the backend that implements it ([`ExtensionDispatch`]).

use trussed::backend::{Backend as _, BackendId};
use trussed::platform::Platform;
use trussed::serde_extensions::{ExtensionDispatch, ExtensionId, ExtensionImpl};
use trussed::service::ServiceResources;
use trussed::types::Context;
use trussed_auth::AuthExtension;
use trussed_auth_backend::{AuthBackend, AuthContext, FilesystemLayout};
use trussed_chunked::ChunkedExtension;
use trussed_core::Error;
use trussed_core::api::{Reply, Request, reply, request};
use trussed_core::types::Location;
use trussed_hpke::HpkeExtension;
use trussed_rsa_alloc::SoftwareRsa;
use trussed_staging::{StagingBackend, StagingContext};
use trussed_wrap_key_to_file::WrapKeyToFileExtension;

/// Our backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PINs and their retry counters.
    Auth,
    /// Chunked files, key wrapping, HPKE.
    Staging,
    /// RSA 2048-4096 in software.
    Rsa,
}

/// The order in which a client's requests are offered to the backends: the first that does
/// not answer `RequestNotAvailable` handles it; trussed's core comes last.
pub const BACKENDS: &[BackendId<Backend>] = &[
    BackendId::Custom(Backend::Auth),
    BackendId::Custom(Backend::Staging),
    BackendId::Custom(Backend::Rsa),
    BackendId::Core,
];

/// The extensions we offer, with the numbers requests carry on the wire between client and
/// service (our choice: they only have to agree within this process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// trussed-auth.
    Auth = 1,
    /// trussed-chunked.
    Chunked = 2,
    /// trussed-wrap-key-to-file.
    WrapKeyToFile = 3,
    /// trussed-hpke.
    Hpke = 4,
}

impl From<Extension> for u8 {
    fn from(extension: Extension) -> u8 {
        extension as u8
    }
}

impl TryFrom<u8> for Extension {
    type Error = Error;

    fn try_from(id: u8) -> Result<Self, Error> {
        [Self::Auth, Self::Chunked, Self::WrapKeyToFile, Self::Hpke]
            .into_iter()
            .find(|e| u8::from(*e) == id)
            .ok_or(Error::RequestNotAvailable)
    }
}

impl ExtensionId<AuthExtension> for Dispatch {
    type Id = Extension;
    const ID: Extension = Extension::Auth;
}

impl ExtensionId<ChunkedExtension> for Dispatch {
    type Id = Extension;
    const ID: Extension = Extension::Chunked;
}

impl ExtensionId<WrapKeyToFileExtension> for Dispatch {
    type Id = Extension;
    const ID: Extension = Extension::WrapKeyToFile;
}

impl ExtensionId<HpkeExtension> for Dispatch {
    type Id = Extension;
    const ID: Extension = Extension::Hpke;
}

/// The backends' state shared by all clients.
#[derive(Debug)]
pub struct Dispatch {
    auth: AuthBackend,
    staging: StagingBackend,
}

impl Dispatch {
    /// PINs live in the internal storage, as on the Nitrokey 3; the layout without `dat/`
    /// directories (V1) is the one for new devices.
    pub fn new() -> Self {
        Self {
            auth: AuthBackend::new(Location::Internal, FilesystemLayout::V1),
            staging: StagingBackend::new(),
        }
    }
}

impl Default for Dispatch {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-client state of the backends (authentication state lives here: it dies with the
/// client, i.e. with a card reset).
#[derive(Default)]
pub struct DispatchContext {
    auth: AuthContext,
    staging: StagingContext,
}

impl ExtensionDispatch for Dispatch {
    type BackendId = Backend;
    type Context = DispatchContext;
    type ExtensionId = Extension;

    fn core_request<P: Platform>(
        &mut self,
        backend: &Backend,
        ctx: &mut Context<DispatchContext>,
        request: &Request,
        resources: &mut ServiceResources<P>,
    ) -> Result<Reply, Error> {
        let core = &mut ctx.core;
        match backend {
            Backend::Auth => self.auth.request(core, &mut ctx.backends.auth, request, resources),
            Backend::Staging => {
                self.staging.request(core, &mut ctx.backends.staging, request, resources)
            }
            Backend::Rsa => SoftwareRsa.request(core, &mut (), request, resources),
        }
    }

    fn extension_request<P: Platform>(
        &mut self,
        backend: &Backend,
        extension: &Extension,
        ctx: &mut Context<DispatchContext>,
        request: &request::SerdeExtension,
        resources: &mut ServiceResources<P>,
    ) -> Result<reply::SerdeExtension, Error> {
        let core = &mut ctx.core;
        let staging = &mut ctx.backends.staging;
        match (backend, extension) {
            (Backend::Auth, Extension::Auth) => {
                ExtensionImpl::<AuthExtension>::extension_request_serialized(
                    &mut self.auth,
                    core,
                    &mut ctx.backends.auth,
                    request,
                    resources,
                )
            }
            (Backend::Staging, Extension::Chunked) => {
                ExtensionImpl::<ChunkedExtension>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    staging,
                    request,
                    resources,
                )
            }
            (Backend::Staging, Extension::WrapKeyToFile) => {
                ExtensionImpl::<WrapKeyToFileExtension>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    staging,
                    request,
                    resources,
                )
            }
            (Backend::Staging, Extension::Hpke) => {
                ExtensionImpl::<HpkeExtension>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    staging,
                    request,
                    resources,
                )
            }
            _ => Err(Error::RequestNotAvailable),
        }
    }
}
