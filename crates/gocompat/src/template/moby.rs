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

/// `types.ContainerJSON`, what `docker container inspect` formats (moby v20.10
/// `api/types/types.go`): `*ContainerJSONBase` embedded, then the mounts, the config and the
/// network settings. `HostConfig` is opaque ([`GoType::Opaque`]): ovl's documents have none, and a
/// template that prints or encodes one that is there is answered by the JSON run.
pub static CONTAINER_JSON: GoType = GoType::Struct(&GoStruct {
    name: "types.ContainerJSON",
    fields: &[
        GoField::embedded("ContainerJSONBase", &CONTAINER_JSON_BASE_POINTER),
        GoField::new("Mounts", &MOUNT_POINTS),
        GoField::new("Config", &CONFIG_POINTER),
        GoField::new("NetworkSettings", &NETWORK_SETTINGS_POINTER),
    ],
});

static CONTAINER_JSON_BASE_POINTER: GoType = GoType::Pointer(&GoType::Struct(&GoStruct {
    name: "types.ContainerJSONBase",
    fields: &[
        GoField::keyed("ID", "Id", &GoType::String),
        GoField::new("Created", &GoType::String),
        GoField::new("Path", &GoType::String),
        GoField::new("Args", &STRINGS),
        GoField::new("State", &CONTAINER_STATE_POINTER),
        GoField::new("Image", &GoType::String),
        GoField::new("ResolvConfPath", &GoType::String),
        GoField::new("HostnamePath", &GoType::String),
        GoField::new("HostsPath", &GoType::String),
        GoField::new("LogPath", &GoType::String),
        GoField::new("Node", &CONTAINER_NODE_POINTER).omitempty(),
        GoField::new("Name", &GoType::String),
        GoField::new("RestartCount", &INT),
        GoField::new("Driver", &GoType::String),
        GoField::new("Platform", &GoType::String),
        GoField::new("MountLabel", &GoType::String),
        GoField::new("ProcessLabel", &GoType::String),
        GoField::new("AppArmorProfile", &GoType::String),
        GoField::new("ExecIDs", &STRINGS),
        GoField::new("HostConfig", &GoType::Opaque("container.HostConfig")),
        GoField::new("GraphDriver", &GRAPH_DRIVER_DATA),
        GoField::new("SizeRw", &INT64_POINTER).omitempty(),
        GoField::new("SizeRootFs", &INT64_POINTER).omitempty(),
    ],
}));

static CONTAINER_STATE_POINTER: GoType = GoType::Pointer(&GoType::Struct(&GoStruct {
    name: "types.ContainerState",
    fields: &[
        GoField::new("Status", &GoType::String),
        GoField::new("Running", &GoType::Bool),
        GoField::new("Paused", &GoType::Bool),
        GoField::new("Restarting", &GoType::Bool),
        GoField::new("OOMKilled", &GoType::Bool),
        GoField::new("Dead", &GoType::Bool),
        GoField::new("Pid", &INT),
        GoField::new("ExitCode", &INT),
        GoField::new("Error", &GoType::String),
        GoField::new("StartedAt", &GoType::String),
        GoField::new("FinishedAt", &GoType::String),
        GoField::new("Health", &HEALTH_POINTER).omitempty(),
    ],
}));

static HEALTH_POINTER: GoType = GoType::Pointer(&GoType::Struct(&GoStruct {
    name: "types.Health",
    fields: &[
        GoField::new("Status", &GoType::String),
        GoField::new("FailingStreak", &INT),
        GoField::new("Log", &HEALTHCHECK_RESULTS),
    ],
}));

static HEALTHCHECK_RESULTS: GoType = GoType::Slice(&GoType::Pointer(&GoType::Struct(&GoStruct {
    name: "types.HealthcheckResult",
    fields: &[
        GoField::new("Start", &GoType::Time),
        GoField::new("End", &GoType::Time),
        GoField::new("ExitCode", &INT),
        GoField::new("Output", &GoType::String),
    ],
})));

static CONTAINER_NODE_POINTER: GoType = GoType::Pointer(&GoType::Struct(&GoStruct {
    name: "types.ContainerNode",
    fields: &[
        GoField::new("ID", &GoType::String),
        GoField::keyed("IPAddress", "IP", &GoType::String),
        GoField::new("Addr", &GoType::String),
        GoField::new("Name", &GoType::String),
        GoField::new("Cpus", &INT),
        GoField::new("Memory", &INT64),
        GoField::new("Labels", &STRING_MAP),
    ],
}));

static MOUNT_POINTS: GoType = GoType::Slice(&GoType::Struct(&GoStruct {
    name: "types.MountPoint",
    fields: &[
        GoField::new("Type", &GoType::Named("mount.Type", &GoType::String)).omitempty(),
        GoField::new("Name", &GoType::String).omitempty(),
        GoField::new("Source", &GoType::String),
        GoField::new("Destination", &GoType::String),
        GoField::new("Driver", &GoType::String).omitempty(),
        GoField::new("Mode", &GoType::String),
        GoField::new("RW", &GoType::Bool),
        GoField::new(
            "Propagation",
            &GoType::Named("mount.Propagation", &GoType::String),
        ),
    ],
}));

/// `types.NetworkSettings`: `NetworkSettingsBase` and `DefaultNetworkSettings` embedded, then the
/// endpoints by network name.
static NETWORK_SETTINGS_POINTER: GoType = GoType::Pointer(&GoType::Struct(&GoStruct {
    name: "types.NetworkSettings",
    fields: &[
        GoField::embedded("NetworkSettingsBase", &NETWORK_SETTINGS_BASE),
        GoField::embedded("DefaultNetworkSettings", &DEFAULT_NETWORK_SETTINGS),
        GoField::new(
            "Networks",
            &GoType::Map(&GoType::String, &ENDPOINT_SETTINGS_POINTER),
        ),
    ],
}));

static NETWORK_SETTINGS_BASE: GoType = GoType::Struct(&GoStruct {
    name: "types.NetworkSettingsBase",
    fields: &[
        GoField::new("Bridge", &GoType::String),
        GoField::new("SandboxID", &GoType::String),
        GoField::new("HairpinMode", &GoType::Bool),
        GoField::new("LinkLocalIPv6Address", &GoType::String),
        GoField::new("LinkLocalIPv6PrefixLen", &INT),
        GoField::new("Ports", &PORT_MAP),
        GoField::new("SandboxKey", &GoType::String),
        GoField::new("SecondaryIPAddresses", &ADDRESSES),
        GoField::new("SecondaryIPv6Addresses", &ADDRESSES),
    ],
});

static DEFAULT_NETWORK_SETTINGS: GoType = GoType::Struct(&GoStruct {
    name: "types.DefaultNetworkSettings",
    fields: &[
        GoField::new("EndpointID", &GoType::String),
        GoField::new("Gateway", &GoType::String),
        GoField::new("GlobalIPv6Address", &GoType::String),
        GoField::new("GlobalIPv6PrefixLen", &INT),
        GoField::new("IPAddress", &GoType::String),
        GoField::new("IPPrefixLen", &INT),
        GoField::new("IPv6Gateway", &GoType::String),
        GoField::new("MacAddress", &GoType::String),
    ],
});

static ENDPOINT_SETTINGS_POINTER: GoType = GoType::Pointer(&GoType::Struct(&GoStruct {
    name: "network.EndpointSettings",
    fields: &[
        GoField::new("IPAMConfig", &ENDPOINT_IPAM_CONFIG_POINTER),
        GoField::new("Links", &STRINGS),
        GoField::new("Aliases", &STRINGS),
        GoField::new("NetworkID", &GoType::String),
        GoField::new("EndpointID", &GoType::String),
        GoField::new("Gateway", &GoType::String),
        GoField::new("IPAddress", &GoType::String),
        GoField::new("IPPrefixLen", &INT),
        GoField::new("IPv6Gateway", &GoType::String),
        GoField::new("GlobalIPv6Address", &GoType::String),
        GoField::new("GlobalIPv6PrefixLen", &INT),
        GoField::new("MacAddress", &GoType::String),
        GoField::new("DriverOpts", &STRING_MAP),
    ],
}));

static ENDPOINT_IPAM_CONFIG_POINTER: GoType = GoType::Pointer(&GoType::Struct(&GoStruct {
    name: "network.EndpointIPAMConfig",
    fields: &[
        GoField::new("IPv4Address", &GoType::String).omitempty(),
        GoField::new("IPv6Address", &GoType::String).omitempty(),
        GoField::new("LinkLocalIPs", &STRINGS).omitempty(),
    ],
}));

/// `nat.PortMap`: host bindings by container port.
static PORT_MAP: GoType = GoType::Named(
    "nat.PortMap",
    &GoType::Map(
        &PORT,
        &GoType::Slice(&GoType::Struct(&GoStruct {
            name: "nat.PortBinding",
            fields: &[
                GoField::keyed("HostIP", "HostIp", &GoType::String),
                GoField::new("HostPort", &GoType::String),
            ],
        })),
    ),
);

static ADDRESSES: GoType = GoType::Slice(&GoType::Struct(&GoStruct {
    name: "network.Address",
    fields: &[
        GoField::new("Addr", &GoType::String),
        GoField::new("PrefixLen", &INT),
    ],
}));

static INT64_POINTER: GoType = GoType::Pointer(&INT64);
