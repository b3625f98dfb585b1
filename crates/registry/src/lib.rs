//! registry: a client of the Docker Registry HTTP API v2 (the OCI distribution API), as `docker
//! pull`/`push`/`login` use it.
//!
//! - [`Client`] speaks to one registry: HTTPS with the system CAs plus Docker's per-registry
//!   `certs.d/<host:port>/{*.crt, *.cert, *.key}`, plain HTTP for loopback and listed insecure
//!   registries, anonymous, basic or bearer-token authentication (the token flow of a
//!   `WWW-Authenticate: Bearer realm=…,service=…` challenge), retries with backoff.
//! - [`manifest`]: Docker schema 2 manifests and manifest lists, OCI manifests and indexes, size
//!   limits, layer media types, and the choice of a platform as Docker makes it.
//! - [`BlobReader`]: a blob streamed with its digest checked at the end; a broken download
//!   resumes with a `Range` request, or starts over and skips what was already read.
//! - Uploads for push: `HEAD` to skip, cross-repository mounts, streamed chunked uploads.
//! - [`credentials`]: Docker's client configuration (`$DOCKER_CONFIG/config.json`): `auths`,
//!   `credsStore` and `credHelpers` with `docker-credential-*` helpers.
//!
//! It knows nothing of the data root: what comes down is handed to the caller as bytes or a
//! reader, and everything pushed comes from readers the caller gives.

use std::path::PathBuf;

mod blob;
pub mod credentials;
pub mod manifest;
mod transport;
mod upload;

pub use blob::BlobReader;
pub use credentials::Credentials;
pub use transport::{Client, ClientOptions};
pub use upload::{Mount, UploadedBlob};

/// Everything that can go wrong talking to a registry. Each variant names the registry, URL,
/// reference, blob or file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{method} {url}: {source}")]
    Transport {
        method: &'static str,
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("{method} {url}: unexpected status {status}: {message}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        message: String,
    },
    #[error("{registry}: {message}; {}", if *.with_credentials {
        format!("the registry refused the credentials (`ovl login {registry}` to change them)")
    } else {
        format!("log in with `ovl login {registry}`")
    })]
    Unauthorized {
        registry: String,
        message: String,
        with_credentials: bool,
    },
    #[error("{what} not found: {message}")]
    NotFound { what: String, message: String },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what}: larger than the limit of {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    #[error("{operation} {path}: {source}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("credential helper docker-credential-{helper}: {message}")]
    Helper { helper: String, message: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether the error is the registry saying no to the credentials (or their absence).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Error::Unauthorized { .. })
    }

    pub(crate) fn invalid(what: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid {
            what: what.into(),
            message: message.into(),
        }
    }
}
