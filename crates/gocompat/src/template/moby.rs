//! The Go types docker/cli decodes inspect documents into (moby v20.10 `api/types`), as
//! [`GoType`] descriptions for [`Template::render_typed`](super::Template::render_typed).
//!
//! Fields are listed in Go declaration order with their JSON keys and `omitempty` tags, because
//! `fmt` prints a struct in that order and `encoding/json` writes it in that order.

use super::gotype::{GoField, GoStruct, GoType};

/// `types.ImageInspect`, what `docker image inspect` formats (moby v20.10
/// `api/types/types.go`).
pub static IMAGE_INSPECT: GoType = GoType::Struct(&IMAGE_INSPECT_STRUCT);

static IMAGE_INSPECT_STRUCT: GoStruct = GoStruct {
    name: "types.ImageInspect",
    fields: &[
        GoField::keyed("ID", "Id", &GoType::String),
        GoField::new("RepoTags", &STRINGS),
        GoField::new("RepoDigests", &STRINGS),
        GoField::new("Parent", &GoType::String),
        GoField::new("Comment", &GoType::String),
        GoField::new("Created", &GoType::String),
        GoField::new("Container", &GoType::String),
        GoField::new("ContainerConfig", &CONFIG_POINTER),
        GoField::new("DockerVersion", &GoType::String),
        GoField::new("Author", &GoType::String),
        GoField::new("Config", &CONFIG_POINTER),
        GoField::new("Architecture", &GoType::String),
        GoField::new("Variant", &GoType::String).omitempty(),
        GoField::new("Os", &GoType::String),
        GoField::new("OsVersion", &GoType::String).omitempty(),
        GoField::new("Size", &INT64),
        GoField::new("VirtualSize", &INT64),
        GoField::new("GraphDriver", &GRAPH_DRIVER_DATA),
        GoField::new("RootFS", &ROOT_FS),
        GoField::new("Metadata", &IMAGE_METADATA),
    ],
};

/// `container.Config` (moby v20.10 `api/types/container/config.go`), an image's `Config` and
/// `ContainerConfig` and a container's `Config`.
pub static CONTAINER_CONFIG: GoType = GoType::Struct(&CONTAINER_CONFIG_STRUCT);

static CONTAINER_CONFIG_STRUCT: GoStruct = GoStruct {
    name: "container.Config",
    fields: &[
        GoField::new("Hostname", &GoType::String),
        GoField::new("Domainname", &GoType::String),
        GoField::new("User", &GoType::String),
        GoField::new("AttachStdin", &GoType::Bool),
        GoField::new("AttachStdout", &GoType::Bool),
        GoField::new("AttachStderr", &GoType::Bool),
        GoField::new("ExposedPorts", &PORT_SET).omitempty(),
        GoField::new("Tty", &GoType::Bool),
        GoField::new("OpenStdin", &GoType::Bool),
        GoField::new("StdinOnce", &GoType::Bool),
        GoField::new("Env", &STRINGS),
        GoField::new("Cmd", &STR_SLICE),
        GoField::new("Healthcheck", &HEALTH_CONFIG_POINTER).omitempty(),
        GoField::new("ArgsEscaped", &GoType::Bool).omitempty(),
        GoField::new("Image", &GoType::String),
        GoField::new("Volumes", &VOLUME_SET),
        GoField::new("WorkingDir", &GoType::String),
        GoField::new("Entrypoint", &STR_SLICE),
        GoField::new("NetworkDisabled", &GoType::Bool).omitempty(),
        GoField::new("MacAddress", &GoType::String).omitempty(),
        GoField::new("OnBuild", &STRINGS),
        GoField::new("Labels", &STRING_MAP),
        GoField::new("StopSignal", &GoType::String).omitempty(),
        GoField::new("StopTimeout", &INT_POINTER).omitempty(),
        GoField::new("Shell", &STR_SLICE).omitempty(),
    ],
};

static CONFIG_POINTER: GoType = GoType::Pointer(&CONTAINER_CONFIG);

/// `container.HealthConfig`; every field is `omitempty`.
static HEALTH_CONFIG: GoType = GoType::Struct(&GoStruct {
    name: "container.HealthConfig",
    fields: &[
        GoField::new("Test", &STRINGS).omitempty(),
        GoField::new("Interval", &GoType::Duration).omitempty(),
        GoField::new("Timeout", &GoType::Duration).omitempty(),
        GoField::new("StartPeriod", &GoType::Duration).omitempty(),
        GoField::new("Retries", &INT).omitempty(),
    ],
});

static HEALTH_CONFIG_POINTER: GoType = GoType::Pointer(&HEALTH_CONFIG);

/// `types.GraphDriverData` (generated from the API's swagger; both keys always written).
pub static GRAPH_DRIVER_DATA: GoType = GoType::Struct(&GoStruct {
    name: "types.GraphDriverData",
    fields: &[
        GoField::new("Data", &STRING_MAP),
        GoField::new("Name", &GoType::String),
    ],
});

/// `types.RootFS` of an image.
static ROOT_FS: GoType = GoType::Struct(&GoStruct {
    name: "types.RootFS",
    fields: &[
        GoField::new("Type", &GoType::String),
        GoField::new("Layers", &STRINGS).omitempty(),
        GoField::new("BaseLayer", &GoType::String).omitempty(),
    ],
});

/// `types.ImageMetadata`.
static IMAGE_METADATA: GoType = GoType::Struct(&GoStruct {
    name: "types.ImageMetadata",
    fields: &[GoField::new("LastTagTime", &GoType::Time).omitempty()],
});

static INT: GoType = GoType::Int("int");
static INT64: GoType = GoType::Int("int64");
static INT_POINTER: GoType = GoType::Pointer(&INT);
static STRINGS: GoType = GoType::Slice(&GoType::String);
static STRING_MAP: GoType = GoType::Map(&GoType::String, &GoType::String);
/// `strslice.StrSlice` (the daemon always writes it as a list).
static STR_SLICE: GoType = GoType::Named("strslice.StrSlice", &STRINGS);
static EMPTY_STRUCT: GoType = GoType::Struct(&GoStruct {
    name: "struct {}",
    fields: &[],
});
static VOLUME_SET: GoType = GoType::Map(&GoType::String, &EMPTY_STRUCT);
static PORT: GoType = GoType::Named("nat.Port", &GoType::String);
static PORT_SET: GoType = GoType::Named("nat.PortSet", &GoType::Map(&PORT, &EMPTY_STRUCT));
