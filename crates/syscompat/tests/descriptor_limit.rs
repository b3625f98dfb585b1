//! `raise_descriptor_limit` and `with_original_descriptor_limit`, in a test process of their own:
//! the limit is the whole process's.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The soft limit `sh` reports for itself, started with or without the hook.
fn soft_limit_of_child(restore: bool) -> String {
    let mut command = std::process::Command::new("sh");
    command.args(["-c", "ulimit -Sn"]);
    if restore {
        syscompat::with_original_descriptor_limit(&mut command);
    }
    let output = command.output().expect("run sh");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .trim()
        .to_string()
}

/// Started with a soft limit of 256 under a higher hard one, the process raises its own to the
/// hard one; a child started through the hook gets 256 back, one started without it the raised
/// limit.
#[test]
fn the_raised_limit_stays_with_this_process() {
    let hard = getrlimit(Resource::Nofile)
        .maximum
        .expect("a bounded hard RLIMIT_NOFILE");
    assert!(
        hard > 256,
        "the hard RLIMIT_NOFILE {hard} leaves nothing to raise"
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(256),
            maximum: Some(hard),
        },
    )
    .expect("lower the soft limit");
    syscompat::raise_descriptor_limit();
    assert_eq!(getrlimit(Resource::Nofile).current, Some(hard));
    assert_eq!(syscompat::descriptor_limit(), hard);
    assert_eq!(soft_limit_of_child(true), "256");
    assert_eq!(soft_limit_of_child(false), hard.to_string());
}
