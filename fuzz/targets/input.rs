//! The layout of a fuzz input: one header byte (options of the target: which state to
//! start from, which bound to decode with), then records, each one message from the peer:
//!
//! ```text
//! header | len (u16 LE) | bytes ... | len (u16 LE) | bytes ... | ...
//! ```
//!
//! A record whose length runs past the end takes what is left, so every input means
//! something. At most [`MAX_RECORDS`] records are read, which bounds the time one input
//! takes.

/// Most records one input is split into.
pub const MAX_RECORDS: usize = 64;

/// Splits `data` into its header byte (0 for an empty input) and its records.
pub fn split(data: &[u8]) -> (u8, Records<'_>) {
    match data.split_first() {
        Some((&header, rest)) => (header, Records { rest, taken: 0 }),
        None => (
            0,
            Records {
                rest: &[],
                taken: 0,
            },
        ),
    }
}

/// The records of an input, in order.
pub struct Records<'a> {
    rest: &'a [u8],
    taken: usize,
}

impl<'a> Iterator for Records<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() || self.taken == MAX_RECORDS {
            return None;
        }
        self.taken += 1;
        let (len, body) = match self.rest {
            [lo, hi, body @ ..] => (usize::from(u16::from_le_bytes([*lo, *hi])), body),
            // One byte left: an empty record, and the end.
            [_] => (0, &[][..]),
            [] => return None,
        };
        let (record, rest) = body.split_at(len.min(body.len()));
        self.rest = rest;
        Some(record)
    }
}

/// Builds an input from a header and records (the inverse of [`split`]); a record longer
/// than `u16::MAX` bytes is cut there.
pub fn join<R: AsRef<[u8]>>(header: u8, records: &[R]) -> Vec<u8> {
    let mut out = vec![header];
    for record in records {
        let record = record.as_ref();
        let len = record.len().min(usize::from(u16::MAX));
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&record[..len]);
    }
    out
}
