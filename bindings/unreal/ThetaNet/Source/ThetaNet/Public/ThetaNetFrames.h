// ThetaNetFrames.h: conversions between Unreal's frame and OpenXR's, which is Theta's
// (ThetaPosef is laid out as XrPosef). Engine-free on purpose: it includes no Unreal
// header, is templated on the vector and quaternion types (FVector / FQuat in the engine,
// small structs in tests/unreal_frames.rs, which compiles it with g++ -fno-exceptions
// -fno-rtti -Werror and checks the cases derived below).
//
// THE TWO FRAMES, from their definitions
//   OpenXR (spec, "Coordinate System"): right-handed, +X right, +Y up, -Z forward (so +Z
//   points back), metres, float.
//   Unreal (coordinate system docs, FVector / FRotator): left-handed, +X forward, +Y right,
//   +Z up, centimetres (AWorldSettings::WorldToMeters, 100 by default), double in UE5.
//
// POSITIONS. Reading each Unreal axis off the OpenXR one that points the same way:
//   forward: U.X =  -O.z      O.x =  U.Y
//   right:   U.Y =   O.x      O.y =  U.Z
//   up:      U.Z =   O.y      O.z = -U.X
// times the world-to-metres scale s (Unreal units per metre), i.e. U = s * M * O with
//   M = | 0 0 -1 |
//       | 1 0  0 |      det M = -1: a reflection composed with a rotation, which is
//       | 0 1  0 |      exactly the change of handedness.
// This is OpenXRHMD's ToFVector / ToXrVector (OpenXRCore.h) with Scale = s.
//
// ROTATIONS. A rotation R (a matrix acting on OpenXR coordinates) is the rotation
// M R M^-1 on Unreal coordinates: same physical motion, so det stays +1. A unit quaternion
// q = (sin(a/2) n, cos(a/2)) turns by a about axis n by the right-hand rule of whatever
// frame its numbers are read in (the Hamilton product both OpenXR and FQuat::RotateVector
// use). An axis is a pseudovector: under an improper M it maps to det(M) * M n = -M n, and
// the angle keeps its sign. So with v = (q.x, q.y, q.z):
//   U.q = (-M v, w) = ( O.z, -O.x, -O.y, O.w)
//   O.q = (-U.Y, -U.Z, U.X, U.W)
// OpenXRHMD's ToFQuat writes (-O.z, O.x, O.y, -O.w): the negation, the same rotation;
// this header keeps w's sign so the identity maps to the identity.
// Check by hand: yaw 90 degrees to the left is +90 about +Y in OpenXR (right-handed:
// counter-clockwise seen from above turns -Z forward into -X, left), q = (0, s, 0, c) with
// s = c = sqrt(1/2); Unreal gets (0, 0, -s, c): -90 about +Z, which is FRotator(0, -90, 0)
// (positive yaw turns forward, +X, toward right, +Y: clockwise seen from above, as a
// left-handed frame makes the same formula look).
//
// ANGULAR VELOCITY (rad/s, axis times rate) is a pseudovector too: U.w = -M O.w.
// LINEAR VELOCITY is a vector: as positions. SCALE is a per-axis magnitude: permuted, never
// negated.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "theta.h"

namespace ThetaNet {
namespace Frames {

/// Unreal units per metre when the world does not say otherwise (WorldToMeters).
constexpr double DefaultUnitsPerMeter = 100.0;

namespace Detail {

/// The scalar type of a vector or quaternion type's X member (double for FVector, float
/// for FVector3f).
template <class T>
using TScalarOf = std::remove_cv_t<std::remove_reference_t<decltype(std::declval<const T &>().X)>>;

template <class T, class... TArgs>
T Make(TArgs... Args) {
    using TScalar = TScalarOf<T>;
    return T(static_cast<TScalar>(Args)...);
}

/// Whether `Value` is finite and, once rounded, fits a float.
inline bool FitsFloat(double Value) {
    return std::isfinite(Value) && std::fabs(Value) <= static_cast<double>(std::numeric_limits<float>::max());
}

inline bool FitsFloat3(double X, double Y, double Z) { return FitsFloat(X) && FitsFloat(Y) && FitsFloat(Z); }

}  // namespace Detail

/// An Unreal position (units, double) in OpenXR metres (float). Check with
/// TryToThetaPose or Detail::FitsFloat first when the value may not fit a float.
template <class TVector>
ThetaVector3f ToThetaPosition(const TVector &V, double UnitsPerMeter = DefaultUnitsPerMeter) {
    const double X = static_cast<double>(V.X), Y = static_cast<double>(V.Y), Z = static_cast<double>(V.Z);
    return ThetaVector3f{static_cast<float>(Y / UnitsPerMeter), static_cast<float>(Z / UnitsPerMeter),
                         static_cast<float>(-X / UnitsPerMeter)};
}

/// An OpenXR position (metres, float) in Unreal units of TVector's scalar type.
template <class TVector>
TVector ToUnrealPosition(const ThetaVector3f &P, double UnitsPerMeter = DefaultUnitsPerMeter) {
    return Detail::Make<TVector>(-static_cast<double>(P.z) * UnitsPerMeter, static_cast<double>(P.x) * UnitsPerMeter,
                                 static_cast<double>(P.y) * UnitsPerMeter);
}

/// An Unreal linear velocity (units/s) in OpenXR m/s: as a position.
template <class TVector>
ThetaVector3f ToThetaLinearVelocity(const TVector &V, double UnitsPerMeter = DefaultUnitsPerMeter) {
    return ToThetaPosition(V, UnitsPerMeter);
}

/// An Unreal angular velocity (rad/s about an axis of Unreal's frame, by its rule) in
/// OpenXR's: a pseudovector, so -M^-1 applied.
template <class TVector>
ThetaVector3f ToThetaAngularVelocity(const TVector &W) {
    return ThetaVector3f{static_cast<float>(-static_cast<double>(W.Y)), static_cast<float>(-static_cast<double>(W.Z)),
                         static_cast<float>(W.X)};
}

/// An OpenXR angular velocity (rad/s) in Unreal's frame: -M applied.
template <class TVector>
TVector ToUnrealAngularVelocity(const ThetaVector3f &W) {
    return Detail::Make<TVector>(static_cast<double>(W.z), -static_cast<double>(W.x), -static_cast<double>(W.y));
}

/// An Unreal scale (X forward, Y right, Z up) on OpenXR's axes: permuted, not negated.
template <class TVector>
ThetaVector3f ToThetaScale(const TVector &S) {
    return ThetaVector3f{static_cast<float>(S.Y), static_cast<float>(S.Z), static_cast<float>(S.X)};
}

/// An OpenXR-axis scale on Unreal's axes.
template <class TVector>
TVector ToUnrealScale(const ThetaVector3f &S) {
    return Detail::Make<TVector>(static_cast<double>(S.z), static_cast<double>(S.x), static_cast<double>(S.y));
}

/// An Unreal rotation as an OpenXR quaternion, normalised in double before rounding to
/// float. False (Out untouched) for a zero or non-finite quaternion.
template <class TQuat>
bool TryToThetaOrientation(const TQuat &Q, ThetaQuaternionf &Out) {
    const double X = -static_cast<double>(Q.Y), Y = -static_cast<double>(Q.Z), Z = static_cast<double>(Q.X),
                 W = static_cast<double>(Q.W);
    const double Norm = std::sqrt(X * X + Y * Y + Z * Z + W * W);
    if (!std::isfinite(Norm) || Norm < 1e-12) {
        return false;
    }
    Out = ThetaQuaternionf{static_cast<float>(X / Norm), static_cast<float>(Y / Norm), static_cast<float>(Z / Norm),
                           static_cast<float>(W / Norm)};
    return true;
}

/// An OpenXR quaternion as an Unreal rotation, normalised in double (FQuat expects unit
/// quaternions). False (Out untouched) for a zero or non-finite quaternion.
template <class TQuat>
bool TryToUnrealRotation(const ThetaQuaternionf &Q, TQuat &Out) {
    const double X = static_cast<double>(Q.z), Y = -static_cast<double>(Q.x), Z = -static_cast<double>(Q.y),
                 W = static_cast<double>(Q.w);
    const double Norm = std::sqrt(X * X + Y * Y + Z * Z + W * W);
    if (!std::isfinite(Norm) || Norm < 1e-12) {
        return false;
    }
    Out = Detail::Make<TQuat>(X / Norm, Y / Norm, Z / Norm, W / Norm);
    return true;
}

/// An Unreal pose (position in units, rotation) as a ThetaPosef. False (Out untouched)
/// when a coordinate is not finite or does not fit a float in metres, or the quaternion is
/// zero: what theta_session_push_pose would refuse, caught before the call.
template <class TVector, class TQuat>
bool TryToThetaPose(const TVector &Position, const TQuat &Rotation, double UnitsPerMeter, ThetaPosef &Out) {
    if (!(UnitsPerMeter > 0.0) || !std::isfinite(UnitsPerMeter)) {
        return false;
    }
    const double X = static_cast<double>(Position.X) / UnitsPerMeter, Y = static_cast<double>(Position.Y) / UnitsPerMeter,
                 Z = static_cast<double>(Position.Z) / UnitsPerMeter;
    ThetaQuaternionf Orientation{};
    if (!Detail::FitsFloat3(X, Y, Z) || !TryToThetaOrientation(Rotation, Orientation)) {
        return false;
    }
    Out.orientation = Orientation;
    Out.position = ToThetaPosition(Position, UnitsPerMeter);
    return true;
}

/// A ThetaPosef as an Unreal position and rotation. False (outputs untouched) for
/// non-finite values or a zero quaternion.
template <class TVector, class TQuat>
bool TryToUnrealPose(const ThetaPosef &Pose, double UnitsPerMeter, TVector &OutPosition, TQuat &OutRotation) {
    const ThetaVector3f &P = Pose.position;
    if (!std::isfinite(P.x) || !std::isfinite(P.y) || !std::isfinite(P.z) || !std::isfinite(UnitsPerMeter)) {
        return false;
    }
    TQuat Rotation = OutRotation;
    if (!TryToUnrealRotation(Pose.orientation, Rotation)) {
        return false;
    }
    OutPosition = ToUnrealPosition<TVector>(P, UnitsPerMeter);
    OutRotation = Rotation;
    return true;
}

/// The value of the plugin's transform component ("ue.Transform"): a pose in OpenXR's
/// frame and metres (so Unity and C++ peers read it as they read XrPosef) and a scale on
/// OpenXR's axes. 40 bytes on the wire, little-endian floats in this order.
struct FTransformValue {
    ThetaPosef Pose{{0.0f, 0.0f, 0.0f, 1.0f}, {0.0f, 0.0f, 0.0f}};
    ThetaVector3f Scale{1.0f, 1.0f, 1.0f};
};

/// Bytes of a packed FTransformValue.
constexpr size_t TransformValueBytes = 40;

static_assert(sizeof(ThetaPosef) == 28 && sizeof(ThetaVector3f) == 12, "XrPosef layout");
static_assert(std::numeric_limits<float>::is_iec559, "floats cross the wire as IEEE 754");

/// Writes the 40 bytes of `Value` (all of Theta's platforms are little-endian).
inline void PackTransform(const FTransformValue &Value, uint8_t (&Out)[TransformValueBytes]) {
    std::memcpy(Out, &Value.Pose, sizeof(ThetaPosef));
    std::memcpy(Out + sizeof(ThetaPosef), &Value.Scale, sizeof(ThetaVector3f));
}

/// Reads a transform value from a peer's bytes: false unless exactly 40 bytes of finite
/// floats with a non-zero quaternion (a hostile value must not reach SetActorTransform).
inline bool UnpackTransform(const uint8_t *Data, size_t Len, FTransformValue &Out) {
    if (Data == nullptr || Len != TransformValueBytes) {
        return false;
    }
    float Floats[10];
    std::memcpy(Floats, Data, TransformValueBytes);
    for (float F : Floats) {
        if (!std::isfinite(F)) {
            return false;
        }
    }
    if (Floats[0] == 0.0f && Floats[1] == 0.0f && Floats[2] == 0.0f && Floats[3] == 0.0f) {
        return false;
    }
    std::memcpy(&Out.Pose, Data, sizeof(ThetaPosef));
    std::memcpy(&Out.Scale, Data + sizeof(ThetaPosef), sizeof(ThetaVector3f));
    return true;
}

/// Byte offset of the position in a transform value: what a host passes to
/// theta_session_set_interest_source for "ue.Transform" (XrPosef's position).
constexpr uint32_t TransformPositionOffset = static_cast<uint32_t>(offsetof(ThetaPosef, position));
static_assert(TransformPositionOffset == 16, "XrPosef: orientation, then position");

/// The declared fields of a transform value (theta_world_declare_fields): its orientation
/// within `RotationDegrees` and its position within `PositionMillimetres`; the scale (bytes
/// 28 to 40) stays raw and bit-exact. Every peer must declare the same (they are part of
/// the registry hash), hence project settings.
inline void TransformFields(float PositionMillimetres, float RotationDegrees, ThetaField (&Out)[2]) {
    Out[0] = ThetaField{};  // zeroed: unused members and reserved bytes must be 0
    Out[0].kind = THETA_FIELD_ROTATION;
    Out[0].offset = static_cast<uint32_t>(offsetof(ThetaPosef, orientation));
    Out[0].precision = RotationDegrees;
    Out[1] = ThetaField{};
    Out[1].kind = THETA_FIELD_POSITION;
    Out[1].offset = TransformPositionOffset;
    Out[1].precision = PositionMillimetres;
}

/// An interest sphere around an Unreal world location (units): entities within `Radius`
/// units become relevant to the client, and stay so within `Radius + Hysteresis`. False
/// (`Out` untouched) when a number is not finite, does not fit a float in metres, or a
/// size is negative: what theta_session_set_interest would refuse, caught before the call.
template <class TVector>
bool TryToInterestSphere(const TVector &Location, double Radius, double Hysteresis, double UnitsPerMeter,
                         ThetaInterestVolume &Out) {
    if (!(UnitsPerMeter > 0.0) || !std::isfinite(UnitsPerMeter) || !(Radius >= 0.0) || !(Hysteresis >= 0.0)) {
        return false;
    }
    const double X = static_cast<double>(Location.X) / UnitsPerMeter,
                 Y = static_cast<double>(Location.Y) / UnitsPerMeter,
                 Z = static_cast<double>(Location.Z) / UnitsPerMeter;
    const double Inner = Radius / UnitsPerMeter, Outer = (Radius + Hysteresis) / UnitsPerMeter;
    if (!Detail::FitsFloat3(X, Y, Z) || !Detail::FitsFloat(Inner) || !Detail::FitsFloat(Outer)) {
        return false;
    }
    ThetaInterestVolume Volume{};
    Volume.kind = THETA_INTEREST_VOLUME_SPHERE;
    const ThetaVector3f Center = ToThetaPosition(Location, UnitsPerMeter);
    Volume.a[0] = Center.x;
    Volume.a[1] = Center.y;
    Volume.a[2] = Center.z;
    Volume.inner = static_cast<float>(Inner);
    // Rounded apart, the outer bound must not fall below the inner one.
    Volume.outer = std::fmax(static_cast<float>(Outer), Volume.inner);
    Out = Volume;
    return true;
}

/// XrSpaceLocationFlags of a pose that is valid and tracked (position and orientation).
constexpr uint64_t TrackedFlags = 0xF;
/// XrSpaceLocationFlags of a pose that is valid but inferred (tracking lost).
constexpr uint64_t ValidUntrackedFlags = 0x3;

}  // namespace Frames
}  // namespace ThetaNet
