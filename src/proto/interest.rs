//! What a client tells the host it is interested in (see [`crate::interest`]): the wire
//! form of volumes and scopes, checked as hostile on arrival, and the client's side, which
//! sends the engine's latest wish at a bounded rate (a head moves every frame; the host's
//! hysteresis absorbs the lag).

use std::time::{Duration, Instant};

use crate::interest::{check_counts, validate_client, InterestError, Volume};
use crate::wire::{fb, Encoder};

/// The shortest time between two interest messages of a client.
pub const INTEREST_INTERVAL: Duration = Duration::from_millis(50);

const SPHERE: u8 = 0;
const BOX: u8 = 1;

fn vec3(v: [f32; 3]) -> fb::Vec3 {
    fb::Vec3::new(v[0], v[1], v[2])
}

fn array(v: &fb::Vec3) -> [f32; 3] {
    [v.x(), v.y(), v.z()]
}

/// Encodes a client's interest.
pub(crate) fn encode(encoder: &mut Encoder, volumes: &[Volume], scopes: &[u32]) -> Vec<u8> {
    encoder.client_interest(&wire_volumes(volumes), scopes)
}

/// Volumes in their wire form.
fn wire_volumes(volumes: &[Volume]) -> Vec<fb::InterestVolume> {
    volumes
        .iter()
        .map(|v| match *v {
            Volume::Sphere {
                center,
                radius,
                outer,
            } => fb::InterestVolume::new(SPHERE, &vec3(center), &vec3([0.0; 3]), radius, outer),
            Volume::Box { min, max, margin } => {
                fb::InterestVolume::new(BOX, &vec3(min), &vec3(max), 0.0, margin)
            }
        })
        .collect()
}

/// Reads a client's interest (verified FlatBuffers, but every number is the peer's):
/// counts are bounded before anything is allocated, and every volume is checked.
pub(crate) fn decode(
    message: fb::ClientInterest<'_>,
) -> Result<(Vec<Volume>, Vec<u32>), InterestError> {
    let (wire_volumes, wire_scopes) = (message.volumes(), message.scopes());
    check_counts(wire_volumes.len(), wire_scopes.len())?;
    let volumes = wire_volumes
        .iter()
        .map(|v| match v.kind() {
            SPHERE => Ok(Volume::Sphere {
                center: array(v.a()),
                radius: v.inner(),
                outer: v.outer(),
            }),
            BOX => Ok(Volume::Box {
                min: array(v.a()),
                max: array(v.b()),
                margin: v.outer(),
            }),
            _ => Err(InterestError::Invalid("an unknown kind of volume")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let scopes: Vec<u32> = wire_scopes.iter().collect();
    validate_client(&volumes, &scopes)?;
    Ok((volumes, scopes))
}

/// A client's side: the engine's latest wish, and whether the host has it.
#[derive(Debug, Default)]
pub(crate) struct ClientInterest {
    wish: Option<(Vec<Volume>, Vec<u32>)>,
    /// The wish changed since it was last sent (or a new connection needs it).
    unsent: bool,
    last_sent: Option<Instant>,
}

impl ClientInterest {
    /// Takes the engine's wish (checked); it goes to the host on a later tick.
    pub(crate) fn set(&mut self, volumes: &[Volume], scopes: &[u32]) -> Result<(), InterestError> {
        validate_client(volumes, scopes)?;
        let wish = (volumes.to_vec(), scopes.to_vec());
        if self.wish.as_ref() != Some(&wish) {
            self.wish = Some(wish);
            self.unsent = true;
        }
        Ok(())
    }

    /// The wish, in wire form, for a join or resume request (which carries it, so that
    /// the snapshot the host sends holds just what this client sees); taken as sent.
    pub(crate) fn for_request(&mut self) -> Option<(Vec<fb::InterestVolume>, Vec<u32>)> {
        self.unsent = false;
        self.last_sent = None;
        let (volumes, scopes) = self.wish.as_ref()?;
        Some((wire_volumes(volumes), scopes.clone()))
    }

    /// The message to send at `now`, if one is due.
    pub(crate) fn poll(&mut self, now: Instant, encoder: &mut Encoder) -> Option<Vec<u8>> {
        let due = self.unsent
            && self
                .last_sent
                .is_none_or(|at| now.saturating_duration_since(at) >= INTEREST_INTERVAL);
        let (volumes, scopes) = self.wish.as_ref().filter(|_| due)?;
        self.unsent = false;
        self.last_sent = Some(now);
        Some(encode(encoder, volumes, scopes))
    }

    /// When a wish waiting for the interval is due, seen at `now`.
    pub(crate) fn next_due(&self, now: Instant) -> Option<Instant> {
        if !self.unsent {
            return None;
        }
        Some(
            self.last_sent
                .map_or(now, |at| (at + INTEREST_INTERVAL).max(now)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interest::{MAX_SCOPES, MAX_VOLUMES};
    use crate::wire::{self, Message};

    fn roundtrip(bytes: &[u8]) -> Result<(Vec<Volume>, Vec<u32>), InterestError> {
        match wire::decode(bytes).unwrap() {
            Message::ClientInterest(m) => decode(m),
            other => panic!("{}", other.kind()),
        }
    }

    #[test]
    fn a_wish_goes_once_per_change_at_a_bounded_rate_and_again_on_a_new_connection() {
        let mut side = ClientInterest::default();
        let mut encoder = Encoder::new();
        let t0 = Instant::now();
        assert!(side.poll(t0, &mut encoder).is_none(), "nothing wished");
        let sphere = Volume::Sphere {
            center: [1.0, 2.0, 3.0],
            radius: 4.0,
            outer: 5.0,
        };
        let cube = Volume::Box {
            min: [0.0; 3],
            max: [1.0; 3],
            margin: 0.5,
        };
        side.set(&[sphere, cube], &[7, 9]).unwrap();
        let sent = side.poll(t0, &mut encoder).unwrap();
        assert_eq!(roundtrip(&sent).unwrap(), (vec![sphere, cube], vec![7, 9]));
        assert!(side.poll(t0, &mut encoder).is_none(), "sent already");
        side.set(&[sphere], &[]).unwrap();
        assert!(side
            .poll(t0 + INTEREST_INTERVAL / 2, &mut encoder)
            .is_none());
        assert!(side.poll(t0 + INTEREST_INTERVAL, &mut encoder).is_some());
        side.set(&[sphere], &[]).unwrap();
        assert!(side.next_due(t0).is_none(), "the same wish is no change");
        // A new connection's request carries it.
        let (volumes, scopes) = side.for_request().unwrap();
        assert_eq!((volumes.len(), scopes.len()), (1, 0));
        assert!(side
            .poll(t0 + INTEREST_INTERVAL * 3, &mut encoder)
            .is_none());
        // Bad wishes are refused and change nothing.
        let nan = Volume::Sphere {
            center: [f32::NAN; 3],
            radius: 1.0,
            outer: 1.0,
        };
        assert!(side.set(&[nan], &[]).is_err());
        assert!(side.set(&[sphere; MAX_VOLUMES + 1], &[]).is_err());
        assert!(side.next_due(t0).is_none());
    }

    #[test]
    fn hostile_interest_messages_are_refused() {
        let mut encoder = Encoder::new();
        let ok = Volume::Sphere {
            center: [0.0; 3],
            radius: 1.0,
            outer: 2.0,
        };
        let bad = [
            encode(&mut encoder, &[ok; MAX_VOLUMES + 1], &[]),
            encode(&mut encoder, &[ok], &[1; MAX_SCOPES + 1]),
            encode(
                &mut encoder,
                &[Volume::Sphere {
                    center: [0.0; 3],
                    radius: -1.0,
                    outer: 2.0,
                }],
                &[],
            ),
            encoder.client_interest(
                &[fb::InterestVolume::new(
                    9,
                    &vec3([0.0; 3]),
                    &vec3([0.0; 3]),
                    1.0,
                    1.0,
                )],
                &[],
            ),
            encoder.client_interest(
                &[fb::InterestVolume::new(
                    BOX,
                    &vec3([0.0; 3]),
                    &vec3([f32::INFINITY; 3]),
                    0.0,
                    1.0,
                )],
                &[],
            ),
        ];
        for (i, bytes) in bad.iter().enumerate() {
            assert!(roundtrip(bytes).is_err(), "case {i}");
        }
    }
}
