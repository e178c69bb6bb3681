//! XR poses: the pose types shared with OpenXR, and their quantised, bit-packed encoding.
//!
//! Layer "xr" of `DESIGN.md`: pose types, quantisation (and later the jitter buffer and
//! interpolation). It knows nothing of sockets or C.
//!
//! - [`pose`]: [`Pose`] (layout-identical to OpenXR's `XrPosef`, asserted at compile time
//!   against `openxr-sys`), [`Device`], [`PoseFlags`] (`XrSpaceLocationFlags` bits),
//!   [`ControllerState`], [`PoseSample`] and validation ([`validate_pose`]).
//! - [`jitter`]: the receiving side of a remote device's pose stream, a [`JitterBuffer`]
//!   with an adaptive playout delay, interpolation and bounded extrapolation.
//! - [`bits`]: a small [`BitWriter`] and a bounds-checked [`BitReader`].
//! - [`stream`]: the pose stream of a link; [`relay`]: the host's relaying of every
//!   peer's avatar, each section encoded once per reference set.
//! - [`quantize`]: positions to ≤ 1 mm inside a [`Volume`], orientations by smallest-three
//!   to ≤ 0.1°, absolute ([`encode_pose`]) and delta-against-reference
//!   ([`encode_pose_delta`]) forms.

pub mod bits;
pub mod jitter;
pub mod pose;
pub mod predict;
pub mod quantize;
pub mod relay;
pub mod stream;
pub mod synthetic;

pub use bits::{BitError, BitReader, BitWriter};
pub use jitter::{JitterBuffer, JitterConfig, PushOutcome, Sampled};
pub use pose::{
    validate_pose, validate_sample, ControllerState, Device, Pose, PoseError, PoseFlags,
    PoseSample, Quat, Vec3,
};
pub use quantize::{
    decode_pose, decode_pose_delta, encode_pose, encode_pose_delta, EncodeInfo, QuantizeError,
    QuantizedPose, Volume,
};
