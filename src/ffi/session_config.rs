//! The settings of a new session as the C side gives them: a struct that can grow without
//! an ABI break. Its leading `struct_size` says how many bytes the caller's struct has, so
//! a library reads only those (fields it lacks keep their defaults) and refuses set fields
//! it does not know (a newer caller's).

use std::time::Duration;

use super::boundary::{boundary, FfiError, FfiResult};
use super::compression::codec_in;
use super::{check_out, write_out, ThetaStatus};
use crate::net::compression::MAX_DICTIONARY_BYTES;
use crate::net::session::SessionConfig;
use crate::net::tls::CongestionControl;
use crate::wire::codec::MessageKind;

/// Settings of a new session; pass NULL for the defaults. Set `struct_size` to
/// `sizeof(ThetaSessionConfig)` (or start from `theta_session_config_init`); every other
/// field 0 means its default, so a zeroed struct with its size is the default
/// configuration. A library reads `struct_size` bytes: fields appended by a later version
/// keep their defaults when an older caller leaves them out, and a caller's fields this
/// library does not know must be 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ThetaSessionConfig {
    /// Bytes of this struct as the caller compiled it: `sizeof(ThetaSessionConfig)`.
    pub struct_size: u32,
    /// A connection silent this long is closed (default 10 000 ms).
    pub idle_timeout_ms: u32,
    /// Keep-alive interval, well below the idle timeout (default 2 000 ms).
    pub keep_alive_ms: u32,
    /// Bytes of state datagrams each peer may receive per tick (default 256 KiB).
    pub budget_bytes_per_tick: u32,
    /// Snapshot chunk bound for late joiners (default 16 KiB).
    pub max_chunk_bytes: u32,
    /// How long a client waits for the handshake before giving up (default 5 000 ms).
    pub connect_timeout_ms: u32,
    /// How long a host keeps a dropped client's state for it to resume (default 30 000 ms).
    pub resume_grace_ms: u32,
    /// Codec of snapshot chunks, a `ThetaCodec` (default zstd).
    pub snapshot_chunk_codec: u8,
    /// Codec of delta frames, a `ThetaCodec` (default zstd with the session's dictionary).
    pub delta_frame_codec: u8,
    /// Codec of state datagrams, a `ThetaCodec` (default zstd with the session's
    /// dictionary).
    pub datagram_codec: u8,
    /// The connections' congestion controller, a `ThetaCongestion` (default BBR).
    pub congestion: u8,
    /// zstd level of snapshot chunks (default 3). Every level is checked against zstd's
    /// range (1 fastest to 22, negative levels faster still) and ignored with
    /// `THETA_CODEC_NONE`.
    pub snapshot_chunk_level: i32,
    /// zstd level of delta frames (default 1).
    pub delta_frame_level: i32,
    /// zstd level of state datagrams (default 1).
    pub datagram_level: i32,
    /// Host: samples of a kind using `THETA_CODEC_ZSTD_DICT` recorded before its first
    /// dictionary is trained automatically (default 512); `THETA_TRAIN_ON_DEMAND_ONLY`
    /// trains only when `theta_session_train_dictionary` asks.
    pub train_after_samples: u32,
    /// Host: bytes asked of the dictionary trainer (default 16 KiB), capped at
    /// `THETA_MAX_DICTIONARY_BYTES` (and at least 1 KiB).
    pub dictionary_bytes: u32,
    /// Host: connection attempts that may await admission at once, from their first packet
    /// to a checked join request, at most half of them from one address (default 32).
    /// Further attempts are asked to retry with address validation.
    pub max_pending_admissions: u32,
    /// Host: how long a connection attempt may take from its first packet to presenting
    /// its join request, handshake included, before the host closes it (default 3 000 ms).
    pub admission_timeout_ms: u32,
    /// Reserved; must be 0.
    pub reserved: u32,
    /// Host: how long a leased ownership grant outlives its holder's silence (default
    /// 5 000 ms). A ticking client keeps its grants by itself (it tells the host it is
    /// there well within the lease); one whose connection goes quiet (app paused, network
    /// lost) loses them once this passes.
    pub ownership_lease_ms: u32,
    /// Host: 0 (the default) lets the policies decide ownership requests alone; otherwise
    /// every request a policy would grant is put to the engine as an `OWNERSHIP_REQUESTED`
    /// event, answered with `theta_session_decide_ownership`, and refused when not
    /// answered within this many milliseconds.
    pub ownership_hook_ms: u32,
    /// Host: 0 (the default) sends every client every entity; otherwise interest
    /// management over cubic cells of this size in metres (about a client's view radius):
    /// each client gets only what it sees (see `theta_session_set_interest`). A negative or
    /// non-finite size is refused.
    pub interest_cell: f32,
    /// Host: 0 (the default) lets clients say what they see (`theta_session_set_interest`);
    /// 1 leaves it to the host's engine alone (`theta_session_set_client_interest`), and
    /// the clients' wishes are ignored.
    pub interest_host_only: u8,
    /// Reserved; must be 0.
    pub reserved_interest: [u8; 3],
}

/// `ThetaSessionConfig::train_after_samples` to train dictionaries only on demand
/// (`theta_session_train_dictionary`), never automatically.
pub const THETA_TRAIN_ON_DEMAND_ONLY: u32 = u32::MAX;
/// Largest dictionary a host trains or a client accepts, in bytes: the cap of
/// `ThetaSessionConfig::dictionary_bytes`.
pub const THETA_MAX_DICTIONARY_BYTES: u32 = 128 << 10;
const _: () = assert!(THETA_MAX_DICTIONARY_BYTES as usize == MAX_DICTIONARY_BYTES);

/// The congestion controller of a session's connections, as
/// `ThetaSessionConfig::congestion` takes it (a `uint8_t`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThetaCongestion {
    /// The library's default (BBR).
    Default = 0,
    /// BBR: models the path's bandwidth and round trip instead of reading every loss as
    /// congestion; holds up on lossy radio links.
    Bbr = 1,
    /// Cubic (RFC 9438): halves its window on loss, whatever caused it.
    Cubic = 2,
}

/// Bytes of the first `ThetaSessionConfig` layout: the least `struct_size` accepted.
const SESSION_CONFIG_V1: usize = 64;
/// Bytes of the layout with the ownership settings (`ownership_lease_ms`,
/// `ownership_hook_ms`).
const SESSION_CONFIG_V2: usize = 72;
/// Bytes of the layout with the interest settings (`interest_cell`,
/// `interest_host_only`): this library's.
const SESSION_CONFIG_V3: usize = 80;
/// A `struct_size` past this is taken for garbage rather than a future layout.
const MAX_STRUCT_SIZE: u32 = 4096;

// The layout has no implicit padding (blittable the same way from C, C++ and C#), and
// appending a field is the only way it may change.
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<ThetaSessionConfig>() == SESSION_CONFIG_V3);
    assert!(align_of::<ThetaSessionConfig>() == 4);
    assert!(offset_of!(ThetaSessionConfig, snapshot_chunk_codec) == 28);
    assert!(offset_of!(ThetaSessionConfig, congestion) == 31);
    assert!(offset_of!(ThetaSessionConfig, snapshot_chunk_level) == 32);
    assert!(offset_of!(ThetaSessionConfig, reserved) == 60);
    assert!(offset_of!(ThetaSessionConfig, ownership_lease_ms) == SESSION_CONFIG_V1);
    assert!(offset_of!(ThetaSessionConfig, ownership_hook_ms) == 68);
    assert!(offset_of!(ThetaSessionConfig, interest_cell) == SESSION_CONFIG_V2);
    assert!(offset_of!(ThetaSessionConfig, interest_host_only) == 76);
    assert!(offset_of!(ThetaSessionConfig, reserved_interest) == 77);
};

impl Default for ThetaSessionConfig {
    /// The default configuration: every field 0 but the size.
    fn default() -> Self {
        ThetaSessionConfig {
            struct_size: size_of::<ThetaSessionConfig>() as u32,
            idle_timeout_ms: 0,
            keep_alive_ms: 0,
            budget_bytes_per_tick: 0,
            max_chunk_bytes: 0,
            connect_timeout_ms: 0,
            resume_grace_ms: 0,
            snapshot_chunk_codec: 0,
            delta_frame_codec: 0,
            datagram_codec: 0,
            congestion: 0,
            snapshot_chunk_level: 0,
            delta_frame_level: 0,
            datagram_level: 0,
            train_after_samples: 0,
            dictionary_bytes: 0,
            max_pending_admissions: 0,
            admission_timeout_ms: 0,
            reserved: 0,
            ownership_lease_ms: 0,
            ownership_hook_ms: 0,
            interest_cell: 0.0,
            interest_host_only: 0,
            reserved_interest: [0; 3],
        }
    }
}

/// Writes the default configuration to `out_config`: every field 0 but `struct_size`,
/// which is this library's `sizeof(ThetaSessionConfig)`. Set the fields you need after.
///
/// # Safety
/// `out_config` must point to a writable `ThetaSessionConfig`.
#[no_mangle]
pub unsafe extern "C" fn theta_session_config_init(
    out_config: *mut ThetaSessionConfig,
) -> ThetaStatus {
    boundary("theta_session_config_init", || {
        check_out(out_config, "out_config")?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { write_out(out_config, ThetaSessionConfig::default()) };
        Ok(())
    })
}

fn invalid(message: impl Into<String>) -> FfiError {
    FfiError::new(ThetaStatus::InvalidArgument, message)
}

/// Reads a caller's growable struct of `struct_size` bytes (its first `u32`) into a
/// zeroed `T`: a shorter one than `min` is refused, a longer one than `T` must have only
/// zeros past what this library knows.
///
/// # Safety
/// `ptr` must be NULL or point to a struct whose first `u32` is its size in bytes, with
/// that many readable bytes.
pub(super) unsafe fn growable_in<T: Copy + Default>(
    ptr: *const T,
    name: &str,
    min: usize,
) -> FfiResult<Option<T>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL; every version of the struct starts with its u32 size.
    let size = unsafe { ptr.cast::<u32>().read_unaligned() };
    if size == 0 {
        return Err(invalid(format!(
            "{name}.struct_size is 0: set it to sizeof({name})"
        )));
    }
    if (size as usize) < min || size > MAX_STRUCT_SIZE {
        return Err(invalid(format!(
            "{name}.struct_size {size} is not the size of any {name} (this library's: {})",
            size_of::<T>()
        )));
    }
    let known = size_of::<T>().min(size as usize);
    // SAFETY: the caller gives `size` readable bytes, of which we read `size`.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), size as usize) };
    if bytes[known..].iter().any(|&b| b != 0) {
        return Err(invalid(format!(
            "{name} sets fields this library does not know (it knows {known} of {size} bytes): \
             a newer header than the library?"
        )));
    }
    let mut value = T::default();
    // SAFETY: `known <= size_of::<T>()` bytes into a plain-data `T` (every bit pattern of
    // these repr(C) integer structs is valid), from `known <= size` readable bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), (&mut value as *mut T).cast::<u8>(), known)
    };
    Ok(Some(value))
}

/// The settings of a `ThetaSessionConfig`, NULL and 0 meaning the defaults; a bad size,
/// an unknown codec or congestion controller, a level outside zstd's range, an interest
/// cell that is negative or not finite, a flag other than 0 or 1 or a non-zero reserved
/// field is `InvalidArgument`.
///
/// # Safety
/// `config` must be NULL or point to a `ThetaSessionConfig` of its `struct_size` bytes.
pub(super) unsafe fn config_in(config: *const ThetaSessionConfig) -> FfiResult<SessionConfig> {
    let mut settings = SessionConfig::default();
    // SAFETY: forwarded contract.
    let Some(config) = (unsafe { growable_in(config, "ThetaSessionConfig", SESSION_CONFIG_V1) })?
    else {
        return Ok(settings);
    };
    if config.reserved != 0 {
        return Err(invalid("ThetaSessionConfig.reserved must be 0"));
    }
    if config.reserved_interest != [0; 3] {
        return Err(invalid("ThetaSessionConfig.reserved_interest must be 0"));
    }
    let cell = config.interest_cell;
    if !cell.is_finite() || cell < 0.0 {
        return Err(invalid(format!(
            "ThetaSessionConfig.interest_cell {cell} is not a size in metres (0: no interest \
             management)"
        )));
    }
    settings.interest_cell = (cell > 0.0).then_some(cell);
    settings.interest_from_clients = match config.interest_host_only {
        0 => true,
        1 => false,
        other => {
            return Err(invalid(format!(
                "ThetaSessionConfig.interest_host_only is {other}: 0 or 1"
            )))
        }
    };
    for (kind, codec, level) in [
        (
            MessageKind::SnapshotChunk,
            config.snapshot_chunk_codec,
            config.snapshot_chunk_level,
        ),
        (
            MessageKind::DeltaFrame,
            config.delta_frame_codec,
            config.delta_frame_level,
        ),
        (
            MessageKind::Datagram,
            config.datagram_codec,
            config.datagram_level,
        ),
    ] {
        let choice = &mut settings.codec.kind_mut(kind).choice;
        *choice = codec_in(kind, codec, level, *choice)?;
    }
    settings.congestion = match config.congestion {
        c if c == ThetaCongestion::Default as u8 => settings.congestion,
        c if c == ThetaCongestion::Bbr as u8 => CongestionControl::Bbr,
        c if c == ThetaCongestion::Cubic as u8 => CongestionControl::Cubic,
        c => {
            return Err(invalid(format!(
                "congestion {c} is not a ThetaCongestion (0..=2)"
            )))
        }
    };
    settings.train_after_samples = match config.train_after_samples {
        0 => settings.train_after_samples,
        THETA_TRAIN_ON_DEMAND_ONLY => 0,
        n => u64::from(n),
    };
    if config.dictionary_bytes != 0 {
        settings.dictionary_bytes = (config.dictionary_bytes as usize).min(MAX_DICTIONARY_BYTES);
    }
    let ms = |ms: u32| Duration::from_millis(u64::from(ms));
    let set_ms = |field: u32, target: &mut Duration| {
        if field != 0 {
            *target = ms(field);
        }
    };
    set_ms(config.idle_timeout_ms, &mut settings.idle_timeout);
    set_ms(config.keep_alive_ms, &mut settings.keep_alive);
    set_ms(config.connect_timeout_ms, &mut settings.connect_timeout);
    set_ms(config.resume_grace_ms, &mut settings.resume_grace);
    set_ms(config.admission_timeout_ms, &mut settings.admission_timeout);
    set_ms(config.ownership_lease_ms, &mut settings.ownership_lease);
    if config.ownership_hook_ms != 0 {
        settings.ownership_hook = Some(ms(config.ownership_hook_ms));
    }
    if config.budget_bytes_per_tick != 0 {
        settings.budget_bytes_per_tick = config.budget_bytes_per_tick as usize;
    }
    if config.max_chunk_bytes != 0 {
        settings.max_chunk_bytes = config.max_chunk_bytes as usize;
    }
    if config.max_pending_admissions != 0 {
        settings.max_pending_admissions = config.max_pending_admissions as usize;
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::ThetaCodec;
    use crate::wire::codec::{CodecChoice, CodecConfig};

    /// The settings of `config`, which must be valid.
    fn settings(config: &ThetaSessionConfig) -> SessionConfig {
        // SAFETY: a valid config.
        unsafe { config_in(config) }.unwrap()
    }

    fn refused(config: &ThetaSessionConfig) -> String {
        // SAFETY: a valid pointer to a config of at least its size.
        unsafe { config_in(config) }.unwrap_err().message
    }

    #[test]
    fn null_and_zeroed_configs_are_the_rust_defaults() {
        let rust = SessionConfig::default();
        // SAFETY: NULL is allowed.
        let null = unsafe { config_in(std::ptr::null()) }.unwrap();
        let zeroed = settings(&ThetaSessionConfig::default());
        for s in [null, zeroed] {
            assert_eq!(s.codec, rust.codec);
            assert_eq!(s.codec, CodecConfig::default());
            assert_eq!(s.congestion, rust.congestion);
            assert_eq!(s.train_after_samples, rust.train_after_samples);
            assert_eq!(s.dictionary_bytes, rust.dictionary_bytes);
            assert_eq!(s.idle_timeout, rust.idle_timeout);
            assert_eq!(s.keep_alive, rust.keep_alive);
            assert_eq!(s.budget_bytes_per_tick, rust.budget_bytes_per_tick);
            assert_eq!(s.max_chunk_bytes, rust.max_chunk_bytes);
            assert_eq!(s.connect_timeout, rust.connect_timeout);
            assert_eq!(s.resume_grace, rust.resume_grace);
            assert_eq!(s.max_pending_admissions, rust.max_pending_admissions);
            assert_eq!(s.admission_timeout, rust.admission_timeout);
            assert_eq!(s.ownership_lease, rust.ownership_lease);
            assert_eq!(s.ownership_hook, rust.ownership_hook);
            assert_eq!(s.interest_cell, rust.interest_cell);
            assert_eq!(s.interest_from_clients, rust.interest_from_clients);
        }
    }

    #[test]
    fn interest_fields_reach_the_session_config_and_bad_ones_are_refused() {
        let s = settings(&ThetaSessionConfig {
            interest_cell: 12.5,
            interest_host_only: 1,
            ..ThetaSessionConfig::default()
        });
        assert_eq!(s.interest_cell, Some(12.5));
        assert!(!s.interest_from_clients);
        let s = settings(&ThetaSessionConfig {
            interest_cell: 4.0,
            ..ThetaSessionConfig::default()
        });
        assert_eq!(s.interest_cell, Some(4.0));
        assert!(s.interest_from_clients, "0: the clients say what they see");
        for (bad, what) in [
            (
                ThetaSessionConfig {
                    interest_cell: -1.0,
                    ..ThetaSessionConfig::default()
                },
                "interest_cell -1",
            ),
            (
                ThetaSessionConfig {
                    interest_cell: f32::NAN,
                    ..ThetaSessionConfig::default()
                },
                "interest_cell NaN",
            ),
            (
                ThetaSessionConfig {
                    interest_cell: f32::INFINITY,
                    ..ThetaSessionConfig::default()
                },
                "interest_cell inf",
            ),
            (
                ThetaSessionConfig {
                    interest_host_only: 2,
                    ..ThetaSessionConfig::default()
                },
                "interest_host_only is 2",
            ),
            (
                ThetaSessionConfig {
                    reserved_interest: [0, 1, 0],
                    ..ThetaSessionConfig::default()
                },
                "reserved_interest must be 0",
            ),
        ] {
            let err = refused(&bad);
            assert!(err.contains(what), "{err}");
        }
    }

    #[test]
    fn an_ownership_layout_struct_without_the_interest_fields_is_accepted() {
        // A caller compiled against the 72-byte layout: what lies past it is not the
        // caller's (garbage here), and the interest settings keep their defaults.
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Old {
            config: [u8; SESSION_CONFIG_V2],
            garbage: [u8; 8],
        }
        let v3 = ThetaSessionConfig {
            struct_size: SESSION_CONFIG_V2 as u32,
            ownership_lease_ms: 1234,
            interest_cell: 3.0,
            interest_host_only: 1,
            ..ThetaSessionConfig::default()
        };
        // SAFETY: a repr(C) struct of plain numbers without padding viewed as its bytes.
        let bytes: [u8; SESSION_CONFIG_V3] = unsafe { std::mem::transmute(v3) };
        let mut old = Old {
            config: [0; SESSION_CONFIG_V2],
            garbage: [0xFF; 8],
        };
        old.config.copy_from_slice(&bytes[..SESSION_CONFIG_V2]);
        // SAFETY: `struct_size` (72) bytes are readable at the pointer.
        let s = unsafe { config_in((&old as *const Old).cast::<ThetaSessionConfig>()) }.unwrap();
        assert_eq!(s.ownership_lease, Duration::from_millis(1234));
        assert_eq!(s.interest_cell, None);
        assert!(s.interest_from_clients);
    }

    #[test]
    fn ownership_fields_reach_the_session_config() {
        let s = settings(&ThetaSessionConfig {
            ownership_lease_ms: 1500,
            ownership_hook_ms: 250,
            ..ThetaSessionConfig::default()
        });
        assert_eq!(s.ownership_lease, Duration::from_millis(1500));
        assert_eq!(s.ownership_hook, Some(Duration::from_millis(250)));
        let s = settings(&ThetaSessionConfig {
            ownership_hook_ms: 0,
            ..ThetaSessionConfig::default()
        });
        assert_eq!(s.ownership_hook, None);
    }

    #[test]
    fn a_first_layout_struct_without_the_ownership_fields_is_accepted() {
        // A caller compiled against the 64-byte layout: the library must read only those
        // bytes (what lies past them is not the caller's) and keep the ownership defaults.
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Old {
            config: [u8; SESSION_CONFIG_V1],
            garbage: [u8; 8],
        }
        let mut v3 = ThetaSessionConfig {
            struct_size: SESSION_CONFIG_V1 as u32,
            max_chunk_bytes: 2048,
            ..ThetaSessionConfig::default()
        };
        v3.ownership_lease_ms = 1;
        v3.ownership_hook_ms = 1;
        // SAFETY: a repr(C) struct of plain numbers without padding viewed as its bytes.
        let bytes: [u8; SESSION_CONFIG_V3] = unsafe { std::mem::transmute(v3) };
        let mut old = Old {
            config: [0; SESSION_CONFIG_V1],
            garbage: [0xFF; 8],
        };
        old.config.copy_from_slice(&bytes[..SESSION_CONFIG_V1]);
        // SAFETY: `struct_size` (64) bytes are readable at the pointer.
        let s = unsafe { config_in((&old as *const Old).cast::<ThetaSessionConfig>()) }.unwrap();
        assert_eq!(s.max_chunk_bytes, 2048);
        let rust = SessionConfig::default();
        assert_eq!(s.ownership_lease, rust.ownership_lease);
        assert_eq!(s.ownership_hook, None);
    }

    #[test]
    fn codec_fields_map_to_the_codec_config() {
        let s = settings(&ThetaSessionConfig {
            snapshot_chunk_codec: ThetaCodec::None as u8,
            delta_frame_codec: ThetaCodec::Zstd as u8,
            datagram_codec: ThetaCodec::Default as u8,
            datagram_level: 7,
            train_after_samples: THETA_TRAIN_ON_DEMAND_ONLY,
            dictionary_bytes: u32::MAX,
            ..ThetaSessionConfig::default()
        });
        assert_eq!(s.codec.snapshot_chunk.choice, CodecChoice::None);
        // Level 0: the kind's default level (1 for delta frames).
        assert_eq!(s.codec.delta_frame.choice, CodecChoice::Zstd { level: 1 });
        assert_eq!(s.codec.datagram.choice, CodecChoice::ZstdDict { level: 7 });
        assert_eq!(
            s.codec.datagram.max_len,
            CodecConfig::default().datagram.max_len
        );
        assert_eq!(s.train_after_samples, 0);
        assert_eq!(s.dictionary_bytes, MAX_DICTIONARY_BYTES);
        let s = settings(&ThetaSessionConfig {
            snapshot_chunk_codec: ThetaCodec::ZstdDict as u8,
            train_after_samples: 64,
            dictionary_bytes: 4096,
            ..ThetaSessionConfig::default()
        });
        assert_eq!(
            s.codec.snapshot_chunk.choice,
            CodecChoice::ZstdDict { level: 3 }
        );
        assert_eq!((s.train_after_samples, s.dictionary_bytes), (64, 4096));
    }

    #[test]
    fn congestion_and_admission_fields_reach_the_session_config() {
        let s = settings(&ThetaSessionConfig {
            congestion: ThetaCongestion::Cubic as u8,
            max_pending_admissions: 5,
            admission_timeout_ms: 750,
            ..ThetaSessionConfig::default()
        });
        assert_eq!(s.congestion, CongestionControl::Cubic);
        assert_eq!(s.max_pending_admissions, 5);
        assert_eq!(s.admission_timeout, Duration::from_millis(750));
        let s = settings(&ThetaSessionConfig {
            congestion: ThetaCongestion::Bbr as u8,
            ..ThetaSessionConfig::default()
        });
        assert_eq!(s.congestion, CongestionControl::Bbr);
        let err = refused(&ThetaSessionConfig {
            congestion: 3,
            ..ThetaSessionConfig::default()
        });
        assert!(
            err.contains("congestion 3 is not a ThetaCongestion"),
            "{err}"
        );
    }

    #[test]
    fn the_struct_size_is_checked_and_unknown_trailing_fields_refused() {
        let err = refused(&ThetaSessionConfig {
            struct_size: 0,
            ..ThetaSessionConfig::default()
        });
        assert!(err.contains("struct_size is 0"), "{err}");
        let err = refused(&ThetaSessionConfig {
            struct_size: 40,
            ..ThetaSessionConfig::default()
        });
        assert!(err.contains("struct_size 40 is not the size"), "{err}");
        // A newer caller's struct: 8 bytes more. Zeros there are fine (its defaults) ...
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Newer {
            v1: ThetaSessionConfig,
            added: u64,
        }
        let mut newer = Newer {
            v1: ThetaSessionConfig {
                struct_size: size_of::<Newer>() as u32,
                max_chunk_bytes: 4096,
                ..ThetaSessionConfig::default()
            },
            added: 0,
        };
        // SAFETY: `struct_size` bytes are readable at the pointer.
        let s = unsafe { config_in(&newer.v1) }.unwrap();
        assert_eq!(s.max_chunk_bytes, 4096);
        // ... a field set there is refused: this library cannot honour it.
        newer.added = 1;
        // SAFETY: as above.
        let err = unsafe { config_in(&newer.v1) }.unwrap_err().message;
        assert!(err.contains("does not know"), "{err}");
    }
}
