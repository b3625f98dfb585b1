//! Random bytes: `getrandom` (Linux 3.17), else `/dev/urandom`.

use std::io::{self, Read};

use rustix::io::Errno;

/// Fills `buffer` with random bytes from the kernel's generator.
pub fn fill_random(buffer: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buffer.len() {
        match rustix::rand::getrandom(&mut buffer[filled..], rustix::rand::GetRandomFlags::empty())
        {
            Ok(n_read) => filled += n_read,
            Err(Errno::INTR) => {}
            Err(errno) if crate::is_unavailable(errno) => {
                return std::fs::File::open("/dev/urandom")
                    .and_then(|mut urandom| urandom.read_exact(&mut buffer[filled..]))
                    .map_err(|error| {
                        io::Error::new(error.kind(), format!("reading /dev/urandom: {error}"))
                    });
            }
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_whole_buffer_with_something() {
        let mut buffer = [0u8; 64];
        fill_random(&mut buffer).expect("random");
        assert!(buffer.iter().any(|&byte| byte != 0));
    }
}
