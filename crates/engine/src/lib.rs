//! The graph driver's operations over a Docker 20.10 overlay2 data root: load (from any image
//! source), import, create/mount/unmount/remove a container, its changes, commit, save, tag,
//! remove an image, prune and the engine part of fsck.
//!
//! Each operation is a plain function that takes the data root's path (it opens the root itself,
//! with ovl's lock and the dockerd guard whenever it changes the root, see [`access`]) and
//! returns plain data. Progress is reported as [`Event`]s through the caller's callback; the
//! engine never prints. The CLI, the benchmark and any future service call the same functions.

#![deny(unsafe_code)]

pub mod access;
pub mod bundle;
pub mod changes;
mod chunk_pipe;
pub mod commit;
pub mod config;
pub mod container;
pub mod dockerfile;
pub mod error;
pub mod export;
pub mod fsck;
pub mod history;
pub mod image;
pub mod inspect;
pub mod interrupt;
pub mod kernel;
mod layers;
pub mod load;
pub mod prune;
pub mod pull;
pub mod push;
pub mod remote;
pub mod resolve;
pub mod save;
pub mod state;
pub mod tag;
pub mod usage;
pub mod views;

pub use error::{Error, EventError, Result};
pub use store::DataRoot;

/// What an operation reports while it runs, in the order it happens. The caller renders it (the
/// CLI as Docker's commands print it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A container's root filesystem is mounted at `path`.
    Mounted {
        container_id: String,
        path: std::path::PathBuf,
    },
    /// A layer of a loaded image is in the data root already (its DiffID).
    LayerExists { diff_id: String },
    /// A pull starts: `tag` (or digest) from the repository path.
    PullingFrom { tag: String, repository: String },
    /// A push starts, to the repository (fully qualified).
    PushRefersTo { repository: String },
    /// A layer of a pull or push (its short blob or DiffID id) in Docker's words: `Pulling fs
    /// layer`, `Already exists`, `Pull complete`, `Pushed`, `Layer already exists`, `Mounted
    /// from …`.
    LayerStatus { id: String, status: String },
    /// Compressed bytes of a layer read so far (every 4 MiB); may come from a worker thread.
    LayerProgress { label: String, n_bytes: u64 },
    /// A layer is registered; `tar_bytes` is the length of its uncompressed tar.
    LayerLoaded { label: String, tar_bytes: u64 },
    /// An image of a load is stored, under `name` (familiar form) when it has one.
    ImageLoaded {
        image_id: String,
        name: Option<String>,
    },
    /// A name no longer refers to an image (`docker rmi`'s `Untagged:`).
    Untagged { name: String },
    /// An image (its id) or a layer (its ChainID) is removed (`docker rmi`'s `Deleted:`).
    Deleted { id: String },
    /// A container is unmounted; `text` is how the caller named it.
    Unmounted { text: String },
    /// A container is removed; `text` is how the caller named it.
    ContainerRemoved { text: String },
    /// What a prune or repair leaves in place (relative path, reason).
    LeftAlone {
        path: std::path::PathBuf,
        reason: String,
    },
    /// A prune item is removed, or would be on a dry run.
    Garbage {
        item: store::GarbageItem,
        dry_run: bool,
    },
    /// A live dockerd uses the root that a dry run reads (a warning only).
    DockerdInUse {
        root: std::path::PathBuf,
        live: String,
    },
    /// `fsck --repair` fixed something (the text after `repaired: `).
    Repaired { what: String },
}

/// The callback operations report their [`Event`]s to. An error it returns stops the operation
/// where the event happened (a closed output pipe, for instance) and is returned as the
/// operation's error ([`Error::Event`]); events from worker threads ([`Event::LayerProgress`]) ignore it.
pub type Events<'a> = &'a mut (dyn FnMut(Event) -> std::result::Result<(), EventError> + Send);
