//! CRC-64/GO-ISO, the checksum tar-split stores for every file's data.

/// The ISO 3309 polynomial x^64 + x^4 + x^3 + x + 1 (0x1B) in reflected (LSB-first) form, as Go's
/// `crc64.ISO` constant.
const ISO_POLY_REFLECTED: u64 = 0xD800_0000_0000_0000;

/// The byte-at-a-time lookup table, built at compile time the way Go's `crc64.MakeTable` does.
static TABLE: [u64; 256] = make_table(ISO_POLY_REFLECTED);

/// Slicing-by-8 tables: `SLICES[k][b]` is the register after byte `b` followed by `k` zero bytes,
/// so eight input bytes are folded in with eight lookups instead of eight dependent steps.
static SLICES: [[u64; 256]; 8] = make_slices(&TABLE);

const fn make_slices(base: &[u64; 256]) -> [[u64; 256]; 8] {
    let mut slices = [[0u64; 256]; 8];
    slices[0] = *base;
    let mut k = 1;
    while k < 8 {
        let mut idx = 0;
        while idx < 256 {
            let prev = slices[k - 1][idx];
            slices[k][idx] = (prev >> 8) ^ base[(prev & 0xff) as usize];
            idx += 1;
        }
        k += 1;
    }
    slices
}

const fn make_table(poly: u64) -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut idx = 0;
    while idx < 256 {
        let mut crc = idx as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ poly
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[idx] = crc;
        idx += 1;
    }
    table
}

/// CRC-64 with the ISO polynomial as Go's `hash/crc64` computes it (reflected input and output,
/// initial value and final XOR all ones).
#[derive(Debug, Clone, Copy)]
pub struct Crc64(u64);

impl Crc64 {
    /// Starts a checksum. The register holds the inverted running value, so that `update` can be
    /// called any number of times.
    pub fn new() -> Crc64 {
        Crc64(!0)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        let mut crc = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            // Reflected CRC: the first byte is the register's low byte and needs the most steps.
            let x = crc ^ u64::from_le_bytes(word);
            crc = SLICES[7][(x & 0xff) as usize]
                ^ SLICES[6][((x >> 8) & 0xff) as usize]
                ^ SLICES[5][((x >> 16) & 0xff) as usize]
                ^ SLICES[4][((x >> 24) & 0xff) as usize]
                ^ SLICES[3][((x >> 32) & 0xff) as usize]
                ^ SLICES[2][((x >> 40) & 0xff) as usize]
                ^ SLICES[1][((x >> 48) & 0xff) as usize]
                ^ SLICES[0][(x >> 56) as usize];
        }
        for &byte in chunks.remainder() {
            // The low byte of the register selects the table row; truncation is intended.
            crc = TABLE[usize::from((crc as u8) ^ byte)] ^ (crc >> 8);
        }
        self.0 = crc;
    }

    /// The checksum of all bytes seen so far; the state is left untouched.
    pub fn finish(&self) -> u64 {
        !self.0
    }

    /// The checksum as tar-split stores it: 8 bytes, big-endian (Go's `hash.Hash64.Sum`).
    pub fn finish_bytes(&self) -> [u8; 8] {
        self.finish().to_be_bytes()
    }

    /// The checksum of `bytes` in one call.
    pub fn checksum(bytes: &[u8]) -> u64 {
        let mut crc = Crc64::new();
        crc.update(bytes);
        crc.finish()
    }
}

impl Default for Crc64 {
    fn default() -> Self {
        Crc64::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value_matches_crc64_go_iso_catalogue() {
        // The catalogue check value of CRC-64/GO-ISO (reveng), also given in spec §5.
        assert_eq!(Crc64::checksum(b"123456789"), 0xB909_56C7_75A4_1001);
    }

    #[test]
    fn sliced_update_equals_bytewise_steps_at_every_length_and_split() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 131 + 7) as u8).collect();
        let bytewise = |bytes: &[u8]| {
            let mut crc = !0u64;
            for &byte in bytes {
                crc = TABLE[usize::from((crc as u8) ^ byte)] ^ (crc >> 8);
            }
            !crc
        };
        for len in 0..data.len() {
            for split in [0, 1, 3, 8, len / 2] {
                let split = split.min(len);
                let mut crc = Crc64::new();
                crc.update(&data[..split]);
                crc.update(&data[split..len]);
                assert_eq!(
                    crc.finish(),
                    bytewise(&data[..len]),
                    "len {len} split {split}"
                );
            }
        }
    }

    #[test]
    fn empty_input_checksums_to_zero() {
        assert_eq!(Crc64::checksum(b""), 0);
    }

    #[test]
    fn incremental_updates_equal_one_shot() {
        let mut crc = Crc64::new();
        crc.update(b"1234");
        crc.update(b"");
        crc.update(b"56789");
        assert_eq!(crc.finish(), 0xB909_56C7_75A4_1001);
        assert_eq!(
            crc.finish_bytes(),
            [0xB9, 0x09, 0x56, 0xC7, 0x75, 0xA4, 0x10, 0x01]
        );
    }

    #[test]
    fn docker_recorded_checksum_of_three_byte_file() {
        // commit-layer.tar-split.json records "d1/a" (content "a2\n") with payload
        // base64 "YTHEIAAAAAA=" = 61 31 c4 20 00 00 00 00.
        assert_eq!(
            Crc64::checksum(b"a2\n").to_be_bytes(),
            [0x61, 0x31, 0xC4, 0x20, 0, 0, 0, 0]
        );
    }
}
