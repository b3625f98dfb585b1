//! The one tar writer of the tests: every layer, rootfs tarball and archive the tests make goes
//! through [`TarBuilder`].
//!
//! Headers are written byte for byte as given, because the hostile and dialect tests need what
//! the `tar` crate refuses to write (`..`, NUL bytes, empty names, sizes it cannot encode, other
//! magics). The plain methods (`file`, `dir`, `symlink`, `hardlink`, `device`) make POSIX ustar
//! members; [`TarBuilder::entry`] takes a whole [`Header`] and [`TarBuilder::block`] a raw
//! [`Block`] for anything else.

/// Header field offsets (POSIX ustar; star's and GNU's reuse of the prefix area noted where
/// used).
pub mod field {
    pub const NAME: usize = 0;
    pub const MODE: usize = 100;
    pub const UID: usize = 108;
    pub const GID: usize = 116;
    pub const SIZE: usize = 124;
    pub const MTIME: usize = 136;
    pub const CHKSUM: usize = 148;
    pub const TYPEFLAG: usize = 156;
    pub const LINKNAME: usize = 157;
    pub const MAGIC: usize = 257;
    pub const UNAME: usize = 265;
    pub const GNAME: usize = 297;
    pub const DEVMAJOR: usize = 329;
    pub const DEVMINOR: usize = 337;
    pub const PREFIX: usize = 345;
}

/// The mtime of every member unless [`TarBuilder::at`] or the header says otherwise.
pub const DEFAULT_MTIME: u64 = 1_600_000_000;

/// One tar header, written byte for byte as given.
#[derive(Debug, Clone)]
pub struct Header {
    /// At most 100 bytes; [`TarBuilder`]'s plain methods put longer names in a PAX record.
    pub name: Vec<u8>,
    pub flag: u8,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    /// At most 100 bytes, like `name`.
    pub link: Vec<u8>,
    /// Device major and minor numbers.
    pub dev: (u32, u32),
    /// The owner names (`root` unless the builder was given another owner).
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    /// The raw 12-byte size field, instead of the data length in octal.
    pub size_field: Option<[u8; 12]>,
    /// The old GNU magic (`ustar  \0`) instead of POSIX ustar's.
    pub gnu: bool,
}

impl Header {
    /// A ustar header of type `flag` (mode 0755 for a directory, 0644 otherwise, owned by root,
    /// [`DEFAULT_MTIME`]).
    pub fn new(name: &[u8], flag: u8) -> Header {
        Header {
            name: name.to_vec(),
            flag,
            mode: if flag == b'5' { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            mtime: DEFAULT_MTIME,
            link: Vec::new(),
            dev: (0, 0),
            uname: b"root".to_vec(),
            gname: b"root".to_vec(),
            size_field: None,
            gnu: false,
        }
    }

    /// The checksummed header block for `data_len` bytes of data.
    pub fn bytes(&self, data_len: u64) -> [u8; 512] {
        self.block(data_len).checksummed()
    }

    /// The header block (without checksum) for `data_len` bytes of data.
    pub fn block(&self, data_len: u64) -> Block {
        assert!(
            self.name.len() <= 100 && self.link.len() <= 100,
            "name too long for ustar"
        );
        let mut block = Block([0; 512]);
        block
            .set(field::NAME, &self.name)
            .octal::<8>(field::MODE, u64::from(self.mode))
            .octal::<8>(field::UID, u64::from(self.uid))
            .octal::<8>(field::GID, u64::from(self.gid))
            .octal::<12>(field::MTIME, self.mtime)
            .set(field::LINKNAME, &self.link)
            .set(field::UNAME, &self.uname)
            .set(field::GNAME, &self.gname)
            .octal::<8>(field::DEVMAJOR, u64::from(self.dev.0))
            .octal::<8>(field::DEVMINOR, u64::from(self.dev.1));
        match self.size_field {
            Some(size) => block.set(field::SIZE, &size),
            None => block.octal::<12>(field::SIZE, data_len),
        };
        block.0[field::TYPEFLAG] = self.flag;
        if self.gnu {
            block.set(field::MAGIC, b"ustar  \0");
        } else {
            block.set(field::MAGIC, b"ustar\x0000");
        }
        block
    }
}

/// A raw 512-byte header block; [`TarBuilder::block`] sets its checksum when appending it.
#[derive(Debug, Clone)]
pub struct Block(pub [u8; 512]);

impl Block {
    /// A POSIX ustar header block as [`Header::new`] makes it, for `size` bytes of data, with
    /// `name` written as given (no length check: the dialect tests write what they need).
    pub fn ustar(name: &[u8], flag: u8, size: u64) -> Block {
        let mut block = Header::new(b"", flag).block(size);
        block.set(field::NAME, name);
        block
    }

    /// Writes `bytes` at offset `at`.
    pub fn set(&mut self, at: usize, bytes: &[u8]) -> &mut Self {
        self.0[at..at + bytes.len()].copy_from_slice(bytes);
        self
    }

    /// Writes `value` at `at` as zero-padded octal digits filling `N - 1` bytes and a NUL.
    pub fn octal<const N: usize>(&mut self, at: usize, value: u64) -> &mut Self {
        self.set(at, &octal_field::<N>(value))
    }

    /// The block with its checksum: the unsigned sum of all bytes with the checksum field
    /// counted as spaces, written `%06o\0 ` as GNU tar does.
    pub fn checksummed(&self) -> [u8; 512] {
        let mut block = self.0;
        block[field::CHKSUM..field::CHKSUM + 8].copy_from_slice(b"        ");
        let sum: u32 = block.iter().map(|&byte| u32::from(byte)).sum();
        block[field::CHKSUM..field::CHKSUM + 8].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        block
    }
}

impl Block {
    /// The checksummed block followed by `data` padded to a whole block: one member.
    pub fn member(&self, data: &[u8]) -> Vec<u8> {
        let mut bytes = self.checksummed().to_vec();
        bytes.extend_from_slice(data);
        bytes.resize(bytes.len().div_ceil(512) * 512, 0);
        bytes
    }
}

/// `value` as zero-padded octal digits filling all but the last byte, which is NUL.
pub fn octal_field<const N: usize>(value: u64) -> [u8; N] {
    let text = format!("{value:0width$o}\0", width = N - 1);
    assert_eq!(text.len(), N, "{value} does not fit {N} octal bytes");
    let mut field = [0u8; N];
    field.copy_from_slice(text.as_bytes());
    field
}

/// A tar stream built member by member.
///
/// `mode` and `owner` apply to the next plain member only; the mtime given to [`TarBuilder::at`]
/// to every member.
#[derive(Debug)]
pub struct TarBuilder {
    bytes: Vec<u8>,
    mtime: u64,
    next_mode: Option<u32>,
    next_owner: Option<(u32, u32)>,
}

impl Default for TarBuilder {
    fn default() -> Self {
        TarBuilder::new()
    }
}

impl TarBuilder {
    /// Members with [`DEFAULT_MTIME`].
    pub fn new() -> TarBuilder {
        TarBuilder::at(DEFAULT_MTIME)
    }

    /// Members with the given mtime.
    pub fn at(mtime: u64) -> TarBuilder {
        TarBuilder {
            bytes: Vec::new(),
            mtime,
            next_mode: None,
            next_owner: None,
        }
    }

    /// The mode of the next plain member.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.next_mode = Some(mode);
        self
    }

    /// The owner of the next plain member (owner names `root` only for 0).
    pub fn owner(&mut self, uid: u32, gid: u32) -> &mut Self {
        self.next_owner = Some((uid, gid));
        self
    }

    /// A regular file; a trailing `/` is not special.
    pub fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.plain(path, b'0', data, "", 0o644)
    }

    /// A directory; `path` is written as given (Docker's archives end directory names in `/`).
    pub fn dir(&mut self, path: &str) -> &mut Self {
        self.plain(path, b'5', b"", "", 0o755)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.plain(path, b'2', b"", target, 0o777)
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.plain(path, b'1', b"", target, 0o644)
    }

    /// A character (`3`) or block (`4`) device, or a FIFO (`6`, numbers 0).
    pub fn device(&mut self, path: &str, flag: u8, major: u32, minor: u32) -> &mut Self {
        let mut header = self.take_header(path, flag, "", 0o644);
        header.dev = (major, minor);
        self.entry(&header, b"")
    }

    /// A header as given, the data and the padding to a whole block.
    pub fn entry(&mut self, header: &Header, data: &[u8]) -> &mut Self {
        self.block(&header.block(data.len() as u64), data)
    }

    /// A raw header block (its checksum set here), the data and the padding to a whole block.
    pub fn block(&mut self, block: &Block, data: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(&block.checksummed());
        self.raw(data);
        let padding = (512 - data.len() % 512) % 512;
        self.bytes.resize(self.bytes.len() + padding, 0);
        self
    }

    /// Bytes appended as they are.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// A PAX extended header (type `x`) for the next member, records in the given order.
    pub fn pax(&mut self, records: &[(&[u8], &[u8])]) -> &mut Self {
        let header = Header::new(b"PaxHeaders.0/next", b'x');
        self.entry(&header, &pax_records(records))
    }

    /// A GNU long name header (type `L`) for the next member.
    pub fn gnu_long_name(&mut self, name: &[u8]) -> &mut Self {
        let mut data = name.to_vec();
        data.push(0);
        let header = Header {
            gnu: true,
            ..Header::new(b"././@LongLink", b'L')
        };
        self.entry(&header, &data)
    }

    /// The stream with its end-of-archive marker (two zero blocks).
    pub fn finish(&mut self) -> Vec<u8> {
        let mut bytes = std::mem::take(&mut self.bytes);
        bytes.resize(bytes.len() + 1024, 0);
        bytes
    }

    /// The stream as it is, without end-of-archive marker.
    pub fn unterminated(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }

    /// A plain member; a name or link target over 100 bytes goes into a PAX record before it.
    fn plain(
        &mut self,
        path: &str,
        flag: u8,
        data: &[u8],
        link: &str,
        default_mode: u32,
    ) -> &mut Self {
        let mut header = self.take_header(path, flag, link, default_mode);
        let mut records: Vec<(&[u8], &[u8])> = Vec::new();
        if path.len() > 100 {
            records.push((b"path", path.as_bytes()));
            header.name = path.as_bytes()[..100].to_vec();
        }
        if link.len() > 100 {
            records.push((b"linkpath", link.as_bytes()));
            header.link = link.as_bytes()[..100].to_vec();
        }
        if !records.is_empty() {
            self.pax(&records);
        }
        self.entry(&header, data)
    }

    /// The header of the next plain member, using up the pending mode and owner.
    fn take_header(&mut self, path: &str, flag: u8, link: &str, default_mode: u32) -> Header {
        let mut header = Header {
            mode: self.next_mode.take().unwrap_or(default_mode),
            mtime: self.mtime,
            link: link.as_bytes().to_vec(),
            ..Header::new(path.as_bytes(), flag)
        };
        if let Some((uid, gid)) = self.next_owner.take() {
            header.uid = uid;
            header.gid = gid;
            if uid != 0 {
                header.uname.clear();
            }
            if gid != 0 {
                header.gname.clear();
            }
        }
        header
    }
}

/// PAX records, each `<len> <key>=<value>\n` where `<len>` counts the whole record.
pub fn pax_records(records: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut data = Vec::new();
    for (key, value) in records {
        // The space, `=` and newline, then the length's own digits: the fewest that fit.
        let rest = key.len() + value.len() + 3;
        let len = (1..)
            .map(|digits| rest + digits)
            .find(|len| len.to_string().len() + rest == *len)
            .expect("a record length");
        data.extend_from_slice(len.to_string().as_bytes());
        data.push(b' ');
        data.extend_from_slice(key);
        data.push(b'=');
        data.extend_from_slice(value);
        data.push(b'\n');
    }
    data
}
