//! Expected values are what dockerd 20.10.24 wrote into the runtime spec of `docker run -u SPEC`
//! for the same passwd and group files (read from the containerd bundle's `config.json`).

use super::*;

const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n";
const GROUP: &[u8] = b"root:x:0:\napp:x:1000:\nstaff:x:50:app\nwheel:x:10:root,app\n";

fn ids(user: &ExecUser) -> (u32, u32, Vec<u32>) {
    (user.uid, user.gid, user.additional_gids.clone())
}

fn resolve(spec: &str) -> Result<(u32, u32, Vec<u32>), UserError> {
    exec_user(spec, Some(PASSWD), Some(GROUP)).map(|user| ids(&user))
}

#[test]
fn users_resolve_as_dockerd_resolves_them() {
    assert_eq!(resolve(""), Ok((0, 0, vec![0, 10])));
    assert_eq!(resolve("root"), Ok((0, 0, vec![0, 10])));
    assert_eq!(resolve("0"), Ok((0, 0, vec![0, 10])));
    assert_eq!(resolve("app"), Ok((1000, 1000, vec![1000, 50, 10])));
    assert_eq!(resolve("1000"), Ok((1000, 1000, vec![1000, 50, 10])));
    assert_eq!(resolve("2000"), Ok((2000, 0, vec![0])));
    assert_eq!(resolve("app:staff"), Ok((1000, 50, vec![50])));
    assert_eq!(resolve("app:77"), Ok((1000, 77, vec![77])));
    assert_eq!(resolve("2000:2000"), Ok((2000, 2000, vec![2000])));
    assert_eq!(
        resolve("nobody").map_err(|err| err.to_string()),
        Err("unable to find user nobody: no matching entries in passwd file".to_string())
    );
    assert_eq!(
        resolve("app:nogroup").map_err(|err| err.to_string()),
        Err("unable to find group nogroup: no matching entries in group file".to_string())
    );
    assert_eq!(
        resolve("-5").map_err(|err| err.to_string()),
        Err("uids and gids must be in range 0-2147483647".to_string())
    );
    assert_eq!(resolve("2147483648"), Err(UserError::Range));
    assert_eq!(
        exec_user("app", Some(PASSWD), Some(GROUP)).map(|user| user.home),
        Ok("/home/app".to_string())
    );
}

#[test]
fn the_primary_group_is_first_and_duplicates_stay() {
    let passwd = b" root:x:0:0:root:/root:/bin/sh \n#c:x:5:5::/:\n\napp:x:1000:1000::/home/app:/bin/sh\napp:x:1001:1001::/:/bin/sh\n";
    let group = b"root:x:0:root\napp:x:1000:app\nstaff:x:50:app,root\n";
    let resolve = |spec: &str| exec_user(spec, Some(passwd), Some(group)).map(|user| ids(&user));
    assert_eq!(resolve(""), Ok((0, 0, vec![0, 0, 50])));
    assert_eq!(resolve("app"), Ok((1000, 1000, vec![1000, 1000, 50])));
    assert_eq!(resolve("1001"), Ok((1001, 1001, vec![1001, 1000, 50])));
    assert_eq!(resolve("app:0"), Ok((1000, 0, vec![0])));
    assert_eq!(resolve("#c"), Ok((5, 5, vec![5])));
}

#[test]
fn an_image_without_passwd_runs_as_root_or_a_number() {
    let resolve = |spec: &str| exec_user(spec, None, None).map(|user| ids(&user));
    assert_eq!(resolve(""), Ok((0, 0, vec![0])));
    assert_eq!(resolve("5"), Ok((5, 0, vec![0])));
    assert_eq!(resolve("5:6"), Ok((5, 6, vec![6])));
    assert_eq!(resolve("root"), Err(UserError::NoUser("root".to_string())));
    assert_eq!(
        resolve("5:wheel"),
        Err(UserError::NoGroup("wheel".to_string()))
    );
}

#[test]
fn the_environment_starts_with_path_and_hostname() {
    let env = |vars: &[&str]| {
        let vars: Vec<String> = vars.iter().map(|var| var.to_string()).collect();
        process_env(&vars, "4de18050751d")
    };
    assert_eq!(
        env(&["X=1"]),
        [DEFAULT_PATH_ENV, "HOSTNAME=4de18050751d", "X=1"]
    );
    assert_eq!(
        env(&["A=1", "PATH=/bin", "A=2", "HOSTNAME"]),
        ["PATH=/bin", "A=1", "A=2"]
    );
}

fn container_spec(user: &ExecUser) -> Spec {
    let env = vec!["X=1".to_string()];
    let container = ContainerSpec {
        container_id: "4de18050751ddb78177c7cbeddc1df69d82bb795a2ee6ad64b4ec6e8538b8390",
        hostname: "4de18050751d",
        args: vec!["sleep".to_string(), "300".to_string()],
        env: &env,
        working_dir: "/srv",
        user,
        root_path: "/var/lib/docker/overlay2/a13/merged",
        etc_files: None,
        cgroup_namespace: false,
        cgroup_parent: "/docker",
    };
    match docker_spec(&container) {
        Ok(spec) => spec,
        Err(err) => panic!("no spec: {err}"),
    }
}

#[test]
fn root_gets_the_capabilities_and_other_users_the_bounding_set() {
    let root = resolve_user("");
    let spec = container_spec(&root);
    assert_eq!(spec.process.capabilities.effective.len(), 14);
    assert_eq!(spec.process.capabilities.permitted.len(), 14);
    let app = resolve_user("app");
    let capabilities = container_spec(&app).process.capabilities;
    assert_eq!(capabilities.bounding.len(), 14);
    assert!(capabilities.effective.is_empty() && capabilities.permitted.is_empty());
    // The bounding set is 0xa80425fb in /proc/self/status of a default Docker container.
    let mask = capabilities
        .bounding
        .iter()
        .map(|name| 1u64 << capability_number(name))
        .fold(0, |all, bit| all | bit);
    assert_eq!(mask, 0xa804_25fb);
}

#[test]
fn the_spec_serialises_with_dockers_field_names() {
    let app = resolve_user("app");
    let value = match serde_json::to_value(container_spec(&app)) {
        Ok(value) => value,
        Err(err) => panic!("{err}"),
    };
    assert_eq!(
        value["process"]["user"]["additionalGids"],
        serde_json::json!([1000, 50, 10])
    );
    assert_eq!(value["process"]["cwd"], "/srv");
    assert_eq!(value["process"]["oomScoreAdj"], 0);
    assert!(value["process"].get("terminal").is_none());
    assert_eq!(
        value["linux"]["cgroupsPath"],
        "/docker/4de18050751ddb78177c7cbeddc1df69d82bb795a2ee6ad64b4ec6e8538b8390"
    );
    assert_eq!(
        value["linux"]["resources"]["devices"][0],
        serde_json::json!({"allow": false, "access": "rwm"})
    );
    assert_eq!(
        value["linux"]["sysctl"]["net.ipv4.ping_group_range"],
        "0 2147483647"
    );
    assert_eq!(value["mounts"][6]["options"][4], "size=67108864");
    assert_eq!(value["mounts"].as_array().map(Vec::len), Some(7));
}

#[test]
fn a_container_needs_a_command_and_an_absolute_working_dir() {
    let root = resolve_user("");
    let env = Vec::new();
    let mut container = ContainerSpec {
        container_id: "c",
        hostname: "c",
        args: Vec::new(),
        env: &env,
        working_dir: "",
        user: &root,
        root_path: "/r",
        etc_files: None,
        cgroup_namespace: true,
        cgroup_parent: "/ovl",
    };
    assert_eq!(docker_spec(&container), Err(SpecError::NoCommand));
    container.args = vec!["sh".to_string()];
    container.working_dir = "srv";
    assert_eq!(
        docker_spec(&container),
        Err(SpecError::RelativeWorkingDir("srv".to_string()))
    );
    container.working_dir = "";
    let spec = docker_spec(&container).ok();
    assert_eq!(
        spec.as_ref().map(|spec| spec.process.cwd.as_str()),
        Some("/")
    );
    assert_eq!(
        spec.and_then(|spec| spec.linux.namespaces.last().cloned())
            .map(|namespace| namespace.kind),
        Some("cgroup".to_string())
    );
}

#[test]
fn loopback_nameservers_are_filtered() {
    assert_eq!(
        resolv_conf("nameserver 127.0.0.53\nsearch lan\n"),
        "search lan\n\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    );
    assert_eq!(
        resolv_conf("nameserver 10.255.255.53\n"),
        "nameserver 10.255.255.53\n"
    );
}

fn resolve_user(spec: &str) -> ExecUser {
    match exec_user(spec, Some(PASSWD), Some(GROUP)) {
        Ok(user) => user,
        Err(err) => panic!("{spec}: {err}"),
    }
}

/// Capability numbers from linux/capability.h.
fn capability_number(name: &str) -> u32 {
    match name {
        "CAP_CHOWN" => 0,
        "CAP_DAC_OVERRIDE" => 1,
        "CAP_FOWNER" => 3,
        "CAP_FSETID" => 4,
        "CAP_KILL" => 5,
        "CAP_SETGID" => 6,
        "CAP_SETUID" => 7,
        "CAP_SETPCAP" => 8,
        "CAP_NET_BIND_SERVICE" => 10,
        "CAP_NET_RAW" => 13,
        "CAP_SYS_CHROOT" => 18,
        "CAP_MKNOD" => 27,
        "CAP_AUDIT_WRITE" => 29,
        "CAP_SETFCAP" => 31,
        other => panic!("unknown capability {other}"),
    }
}
