//! Room ids: the name a join token gives its room, also the stem of the room's saved file,
//! so it is checked to be a plain file name before it reaches a path.

use std::fmt;

/// Longest room id, in bytes.
pub const MAX_ROOM_ID_BYTES: usize = 64;

/// A checked room id: 1 to [`MAX_ROOM_ID_BYTES`] characters of `[A-Za-z0-9_-]`. Such a
/// name can never be `.`, `..`, hold a separator or a NUL, so `<dir>/<room>.theta` never
/// escapes `dir`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoomId(String);

/// Why a room id was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid room id {given:?}: {reason}")]
pub struct RoomIdError {
    /// The id as given (cut to 80 characters so a hostile one cannot flood a log).
    pub given: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl RoomId {
    /// Checks `id` and makes a room id of it.
    pub fn new(id: &str) -> Result<RoomId, RoomIdError> {
        let refuse = |reason| RoomIdError {
            given: id.chars().take(80).collect(),
            reason,
        };
        if id.is_empty() {
            return Err(refuse("it is empty"));
        }
        if id.len() > MAX_ROOM_ID_BYTES {
            return Err(refuse("it is longer than 64 characters"));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(refuse(
                "only letters A-Z a-z, digits, '_' and '-' are allowed",
            ));
        }
        Ok(RoomId(id.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RoomId {
    type Err = RoomIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RoomId::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_accepted() {
        for id in ["a", "lobby", "Room_42", "eu-west-1", &"x".repeat(64)] {
            assert_eq!(RoomId::new(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn names_that_could_leave_the_directory_are_refused() {
        let cases = [
            ("", "empty"),
            (".", "only letters"),
            ("..", "only letters"),
            ("../etc/passwd", "only letters"),
            ("a/b", "only letters"),
            ("a\\b", "only letters"),
            ("a\0b", "only letters"),
            ("room.theta", "only letters"),
            ("salle-été", "only letters"),
            (" lobby", "only letters"),
        ];
        for (id, why) in cases {
            let err = RoomId::new(id).unwrap_err();
            assert!(err.to_string().contains(why), "{id:?}: {err}");
        }
        let long = "y".repeat(65);
        let err = RoomId::new(&long).unwrap_err();
        assert!(err.to_string().contains("longer than 64"), "{err}");
        let flood = "/".repeat(10_000);
        let err = RoomId::new(&flood).unwrap_err();
        assert!(err.to_string().len() < 200, "the message is bounded");
    }
}
