// Checks the plugin's engine-free headers (ThetaNetFrames.h, ThetaNetText.h) without
// Unreal: known cases derived from OpenXR's and Unreal's definitions, the handedness of
// the change of frame, and round trips. Built by tests/unreal_frames.rs with
// -fno-exceptions -fno-rtti -Werror, as Unreal builds. Prints "ok N checks" and exits 0,
// or names each failed check and exits 1.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>

#include "ThetaNetFrames.h"
#include "ThetaNetText.h"

namespace {

int Checks = 0;
int Failures = 0;

void Check(bool Condition, const char *What, int Line) {
    ++Checks;
    if (!Condition) {
        ++Failures;
        std::printf("FAILED line %d: %s\n", Line, What);
    }
}

#define CHECK(cond) Check((cond), #cond, __LINE__)

// Stand-ins for Unreal's TVector<double> (FVector), TVector<float> (FVector3f) and
// TQuat<double> (FQuat): the members and constructors the headers use.
struct FVectorD {
    double X = 0, Y = 0, Z = 0;
    FVectorD() = default;
    FVectorD(double InX, double InY, double InZ) : X(InX), Y(InY), Z(InZ) {}
};
struct FVectorF {
    float X = 0, Y = 0, Z = 0;
    FVectorF() = default;
    FVectorF(float InX, float InY, float InZ) : X(InX), Y(InY), Z(InZ) {}
};
struct FQuatD {
    double X = 0, Y = 0, Z = 0, W = 1;
    FQuatD() = default;
    FQuatD(double InX, double InY, double InZ, double InW) : X(InX), Y(InY), Z(InZ), W(InW) {}
};

const double Pi = 3.14159265358979323846;

bool Near(double A, double B, double Tolerance) { return std::fabs(A - B) <= Tolerance; }

bool Near3(const FVectorD &V, double X, double Y, double Z, double Tolerance) {
    return Near(V.X, X, Tolerance) && Near(V.Y, Y, Tolerance) && Near(V.Z, Z, Tolerance);
}

bool Near3(const ThetaVector3f &V, double X, double Y, double Z, double Tolerance) {
    return Near(V.x, X, Tolerance) && Near(V.y, Y, Tolerance) && Near(V.z, Z, Tolerance);
}

// Equal as rotations: q and -q are the same rotation.
bool SameRotation(const FQuatD &A, const FQuatD &B, double Tolerance) {
    const double Dot = A.X * B.X + A.Y * B.Y + A.Z * B.Z + A.W * B.W;
    return Near(std::fabs(Dot), 1.0, Tolerance);
}

// v' = q v q*, the Hamilton-product rotation that OpenXR's quaternions and FQuat::RotateVector
// both mean, written out: v' = v + 2w (u x v) + 2 u x (u x v), u = (x, y, z).
FVectorD Rotate(double QX, double QY, double QZ, double QW, const FVectorD &V) {
    const double TX = 2 * (QY * V.Z - QZ * V.Y), TY = 2 * (QZ * V.X - QX * V.Z), TZ = 2 * (QX * V.Y - QY * V.X);
    return FVectorD(V.X + QW * TX + (QY * TZ - QZ * TY), V.Y + QW * TY + (QZ * TX - QX * TZ),
                    V.Z + QW * TZ + (QX * TY - QY * TX));
}

FVectorD RotateUnreal(const FQuatD &Q, const FVectorD &V) { return Rotate(Q.X, Q.Y, Q.Z, Q.W, V); }

// An OpenXR-frame vector held in an FVectorD's X, Y, Z (x right, y up, z back).
FVectorD RotateOpenXr(const ThetaQuaternionf &Q, const FVectorD &V) { return Rotate(Q.x, Q.y, Q.z, Q.w, V); }

ThetaQuaternionf AxisAngle(double X, double Y, double Z, double Radians) {
    const double S = std::sin(Radians / 2);
    return ThetaQuaternionf{static_cast<float>(X * S), static_cast<float>(Y * S), static_cast<float>(Z * S),
                            static_cast<float>(std::cos(Radians / 2))};
}

// FRotator::Quaternion() as Unreal defines it (UnrealMath.cpp), degrees in: the reference
// for what Unreal calls pitch, yaw and roll.
FQuatD RotatorQuaternion(double Pitch, double Yaw, double Roll) {
    const double R = Pi / 360.0;
    const double SP = std::sin(Pitch * R), CP = std::cos(Pitch * R);
    const double SY = std::sin(Yaw * R), CY = std::cos(Yaw * R);
    const double SR = std::sin(Roll * R), CR = std::cos(Roll * R);
    return FQuatD(CR * SP * SY - SR * CP * CY, -CR * SP * CY - SR * CP * SY, CR * CP * SY - SR * SP * CY,
                  CR * CP * CY + SR * SP * SY);
}

FVectorD ToUnreal(const FVectorD &OpenXr) {
    return ThetaNet::Frames::ToUnrealPosition<FVectorD>(
        ThetaVector3f{static_cast<float>(OpenXr.X), static_cast<float>(OpenXr.Y), static_cast<float>(OpenXr.Z)}, 1.0);
}

FVectorD Cross(const FVectorD &A, const FVectorD &B) {
    return FVectorD(A.Y * B.Z - A.Z * B.Y, A.Z * B.X - A.X * B.Z, A.X * B.Y - A.Y * B.X);
}

using namespace ThetaNet;

void KnownPositions() {
    // A head 1.7 m up: OpenXR +Y is up, Unreal +Z is up, 170 cm.
    const FVectorD Head = Frames::ToUnrealPosition<FVectorD>(ThetaVector3f{0.0f, 1.7f, 0.0f});
    CHECK(Near3(Head, 0, 0, 170, 1e-4));
    // A hand 0.3 m forward (OpenXR -Z), 0.2 m right (+X), 0.4 m down (-Y): Unreal +X 30,
    // +Y 20, -Z 40.
    const FVectorD Hand = Frames::ToUnrealPosition<FVectorD>(ThetaVector3f{0.2f, -0.4f, -0.3f});
    CHECK(Near3(Hand, 30, 20, -40, 1e-4));
    const ThetaVector3f Back = Frames::ToThetaPosition(FVectorD(30, 20, -40));
    CHECK(Near3(Back, 0.2, -0.4, -0.3, 1e-7));
    // The axes one by one: Unreal forward, right, up are OpenXR -Z, +X, +Y.
    CHECK(Near3(Frames::ToThetaPosition(FVectorD(100, 0, 0)), 0, 0, -1, 0));
    CHECK(Near3(Frames::ToThetaPosition(FVectorD(0, 100, 0)), 1, 0, 0, 0));
    CHECK(Near3(Frames::ToThetaPosition(FVectorD(0, 0, 100)), 0, 1, 0, 0));
    // Another world scale (WorldToMeters 1: Unreal units are metres).
    CHECK(Near3(Frames::ToUnrealPosition<FVectorD>(ThetaVector3f{0.0f, 1.7f, 0.0f}, 1.0), 0, 0, 1.7, 1e-6));
    // Float vectors (FVector3f) work as well.
    const FVectorF HeadF = Frames::ToUnrealPosition<FVectorF>(ThetaVector3f{0.0f, 1.7f, 0.0f});
    CHECK(Near(HeadF.Z, 170.0, 1e-4) && HeadF.X == 0.0f && HeadF.Y == 0.0f);
}

void KnownRotations() {
    const double S = std::sqrt(0.5);
    // Identity stays identity (w keeps its sign).
    FQuatD Identity;
    CHECK(Frames::TryToUnrealRotation(ThetaQuaternionf{0, 0, 0, 1}, Identity));
    CHECK(Near(Identity.W, 1, 0) && Identity.X == 0 && Identity.Y == 0 && Identity.Z == 0);

    // Yaw 90 degrees to the left: +90 about OpenXR +Y (right-hand rule about up).
    const ThetaQuaternionf YawLeft = AxisAngle(0, 1, 0, Pi / 2);
    // By OpenXR's own definition it turns forward (-Z) to the left (-X).
    const FVectorD ForwardXr = RotateOpenXr(YawLeft, FVectorD(0, 0, -1));
    CHECK(Near3(ForwardXr, -1, 0, 0, 1e-6));
    FQuatD YawLeftUe;
    CHECK(Frames::TryToUnrealRotation(YawLeft, YawLeftUe));
    // In Unreal it is (0, 0, -s, c): -90 about +Z, which is FRotator(0, -90, 0).
    CHECK(Near(YawLeftUe.X, 0, 1e-7) && Near(YawLeftUe.Y, 0, 1e-7) && Near(YawLeftUe.Z, -S, 1e-6) &&
          Near(YawLeftUe.W, S, 1e-6));
    CHECK(SameRotation(YawLeftUe, RotatorQuaternion(0, -90, 0), 1e-6));
    // And it turns Unreal's forward (+X) to the left (-Y).
    CHECK(Near3(RotateUnreal(YawLeftUe, FVectorD(1, 0, 0)), 0, -1, 0, 1e-6));

    // Pitch up 30 degrees: about OpenXR +X (right) by +30 lifts forward toward up; in
    // Unreal that is FRotator(30, 0, 0).
    FQuatD PitchUp;
    CHECK(Frames::TryToUnrealRotation(AxisAngle(1, 0, 0, Pi / 6), PitchUp));
    CHECK(SameRotation(PitchUp, RotatorQuaternion(30, 0, 0), 1e-6));
    // Roll right 45 degrees (right ear down): +45 about OpenXR forward (-Z), i.e. -45
    // about +Z; in Unreal FRotator(0, 0, 45).
    FQuatD RollRight;
    CHECK(Frames::TryToUnrealRotation(AxisAngle(0, 0, 1, -Pi / 4), RollRight));
    CHECK(SameRotation(RollRight, RotatorQuaternion(0, 0, 45), 1e-6));
    // Roll right lowers the right side: Unreal right (+Y) goes down (-Z).
    const FVectorD Right = RotateUnreal(RollRight, FVectorD(0, 1, 0));
    CHECK(Right.Z < -0.7 && Near(Right.X, 0, 1e-6));

    // A composed head rotation (yaw 120 left, pitch 20 down, roll 10): Unreal's FRotator
    // and the converted OpenXR quaternion agree. OpenXR composes yaw about +Y, then pitch
    // about the new +X, then roll about the new -Z (intrinsic), as FRotator does about its
    // axes: Q = Qyaw * Qpitch * Qroll.
    const ThetaQuaternionf XrYaw = AxisAngle(0, 1, 0, 120 * Pi / 180);
    const ThetaQuaternionf XrPitch = AxisAngle(1, 0, 0, -20 * Pi / 180);
    const ThetaQuaternionf XrRoll = AxisAngle(0, 0, 1, -10 * Pi / 180);
    auto Mul = [](const ThetaQuaternionf &A, const ThetaQuaternionf &B) {
        return ThetaQuaternionf{A.w * B.x + A.x * B.w + A.y * B.z - A.z * B.y,
                                A.w * B.y - A.x * B.z + A.y * B.w + A.z * B.x,
                                A.w * B.z + A.x * B.y - A.y * B.x + A.z * B.w,
                                A.w * B.w - A.x * B.x - A.y * B.y - A.z * B.z};
    };
    FQuatD Composed;
    CHECK(Frames::TryToUnrealRotation(Mul(Mul(XrYaw, XrPitch), XrRoll), Composed));
    CHECK(SameRotation(Composed, RotatorQuaternion(-20, -120, 10), 1e-6));
}

void Handedness() {
    // The change of frame is improper (det M = -1): a cross product changes sign. In OpenXR
    // right x up = back (+X x +Y = +Z); carried to Unreal, right x up computed there is
    // forward, the opposite of back carried over.
    const FVectorD RightXr(1, 0, 0), UpXr(0, 1, 0);
    const FVectorD CrossThenMap = ToUnreal(Cross(RightXr, UpXr));
    const FVectorD MapThenCross = Cross(ToUnreal(RightXr), ToUnreal(UpXr));
    CHECK(Near3(CrossThenMap, -1, 0, 0, 0));
    CHECK(Near3(MapThenCross, 1, 0, 0, 0));

    // The same physical turn has opposite-signed angles in the two frames: turning left is
    // +90 about up in OpenXR (counter-clockwise from above) and -90 about up in Unreal.
    FQuatD Left;
    CHECK(Frames::TryToUnrealRotation(AxisAngle(0, 1, 0, Pi / 2), Left));
    CHECK(Left.Z < 0 && Left.W > 0);

    // For any rotation q and vector v: rotating then converting equals converting then
    // rotating with the converted quaternion (M R v = R' M v).
    std::mt19937 Random(7);
    std::uniform_real_distribution<double> Unit(-1.0, 1.0);
    int Agree = 0;
    for (int I = 0; I < 1000; ++I) {
        double X = Unit(Random), Y = Unit(Random), Z = Unit(Random);
        const double N = std::sqrt(X * X + Y * Y + Z * Z) + 1e-9;
        const ThetaQuaternionf Q = AxisAngle(X / N, Y / N, Z / N, Unit(Random) * Pi);
        const FVectorD V(Unit(Random), Unit(Random), Unit(Random));
        FQuatD QUe;
        if (!Frames::TryToUnrealRotation(Q, QUe)) {
            continue;
        }
        const FVectorD Left2 = ToUnreal(RotateOpenXr(Q, V));
        const FVectorD Right2 = RotateUnreal(QUe, ToUnreal(V));
        Agree += Near3(Left2, Right2.X, Right2.Y, Right2.Z, 1e-5) ? 1 : 0;
    }
    CHECK(Agree == 1000);

    // Angular velocity: a small turn at rate w for dt, exp(w dt / 2), converts as the
    // quaternion does.
    const ThetaVector3f Omega{0.3f, -1.2f, 0.7f};
    const double Dt = 1e-3;
    const double Rate = std::sqrt(0.09 + 1.44 + 0.49);
    const ThetaQuaternionf Step = AxisAngle(Omega.x / Rate, Omega.y / Rate, Omega.z / Rate, Rate * Dt);
    FQuatD StepUe;
    CHECK(Frames::TryToUnrealRotation(Step, StepUe));
    const FVectorD OmegaUe = Frames::ToUnrealAngularVelocity<FVectorD>(Omega);
    const double S = std::sin(Rate * Dt / 2) / Rate;
    CHECK(Near(StepUe.X, OmegaUe.X * S, 1e-7) && Near(StepUe.Y, OmegaUe.Y * S, 1e-7) &&
          Near(StepUe.Z, OmegaUe.Z * S, 1e-7));
    const ThetaVector3f OmegaBack = Frames::ToThetaAngularVelocity(OmegaUe);
    CHECK(Near3(OmegaBack, Omega.x, Omega.y, Omega.z, 1e-7));
}

void RoundTrips() {
    std::mt19937 Random(11);
    std::uniform_real_distribution<double> Room(-1e5, 1e5);  // +-1 km in centimetres
    int PositionsOk = 0, RotationsOk = 0;
    for (int I = 0; I < 2000; ++I) {
        const FVectorD P(Room(Random), Room(Random), Room(Random));
        const FVectorD Back = Frames::ToUnrealPosition<FVectorD>(Frames::ToThetaPosition(P));
        // double cm -> float m -> double cm loses at most float's half-ulp per step, i.e.
        // about 6e-8 of the value, plus the division's rounding.
        const double Bound = 1.3e-7;
        PositionsOk += (Near(Back.X, P.X, std::fabs(P.X) * Bound) && Near(Back.Y, P.Y, std::fabs(P.Y) * Bound) &&
                        Near(Back.Z, P.Z, std::fabs(P.Z) * Bound))
                           ? 1
                           : 0;
        const FQuatD Q = RotatorQuaternion(Room(Random) * 1e-2, Room(Random) * 1e-2, Room(Random) * 1e-2);
        ThetaQuaternionf Xr{};
        FQuatD QBack;
        RotationsOk += (Frames::TryToThetaOrientation(Q, Xr) && Frames::TryToUnrealRotation(Xr, QBack) &&
                        SameRotation(Q, QBack, 1e-6))
                           ? 1
                           : 0;
    }
    CHECK(PositionsOk == 2000);
    CHECK(RotationsOk == 2000);

    // Poses: metres in, centimetres out, and back.
    ThetaPosef Pose{};
    CHECK(Frames::TryToThetaPose(FVectorD(12.5, -300, 170), RotatorQuaternion(10, -45, 5), 100.0, Pose));
    CHECK(Near3(Pose.position, -3.0, 1.7, -0.125, 1e-6));
    FVectorD P;
    FQuatD Q;
    CHECK(Frames::TryToUnrealPose(Pose, 100.0, P, Q));
    CHECK(Near3(P, 12.5, -300, 170, 1e-4));
    CHECK(SameRotation(Q, RotatorQuaternion(10, -45, 5), 1e-6));

    // Scale: permuted both ways, signs kept.
    const ThetaVector3f Scale = Frames::ToThetaScale(FVectorD(2, 3, -4));
    CHECK(Near3(Scale, 3, -4, 2, 0));
    CHECK(Near3(Frames::ToUnrealScale<FVectorD>(Scale), 2, 3, -4, 0));
    // Linear velocity as positions: 100 cm/s forward is 1 m/s along -Z.
    CHECK(Near3(Frames::ToThetaLinearVelocity(FVectorD(100, 0, 0)), 0, 0, -1, 0));
}

void Refusals() {
    ThetaPosef Pose{};
    const FQuatD Unit;
    const double Nan = std::nan("");
    // What theta_session_push_pose would refuse is refused before the call.
    CHECK(!Frames::TryToThetaPose(FVectorD(Nan, 0, 0), Unit, 100.0, Pose));
    CHECK(!Frames::TryToThetaPose(FVectorD(0, 1e300, 0), Unit, 100.0, Pose));  // no float holds it
    CHECK(!Frames::TryToThetaPose(FVectorD(0, 0, 0), FQuatD(0, 0, 0, 0), 100.0, Pose));
    CHECK(!Frames::TryToThetaPose(FVectorD(0, 0, 0), Unit, 0.0, Pose));
    CHECK(!Frames::TryToThetaPose(FVectorD(0, 0, 0), FQuatD(Nan, 0, 0, 1), 100.0, Pose));
    // Non-unit quaternions are normalised.
    CHECK(Frames::TryToThetaPose(FVectorD(0, 0, 0), FQuatD(0, 0, 0, 5), 100.0, Pose));
    CHECK(Pose.orientation.w == 1.0f);
    FQuatD Q;
    CHECK(Frames::TryToUnrealRotation(ThetaQuaternionf{0, 0, 2, 0}, Q) && Near(Q.X, 1, 1e-12));
    CHECK(!Frames::TryToUnrealRotation(ThetaQuaternionf{0, 0, 0, 0}, Q));
    FVectorD P(1, 2, 3);
    ThetaPosef Bad{{0, 0, 0, 1}, {std::numeric_limits<float>::infinity(), 0, 0}};
    CHECK(!Frames::TryToUnrealPose(Bad, 100.0, P, Q));
    CHECK(P.X == 1 && P.Y == 2 && P.Z == 3);  // untouched on failure
}

void TransformValues() {
    Frames::FTransformValue Value;
    Value.Pose = ThetaPosef{{0.0f, 0.70710677f, 0.0f, 0.70710677f}, {0.2f, 1.7f, -0.3f}};
    Value.Scale = ThetaVector3f{1.0f, 2.0f, 0.5f};
    uint8_t Bytes[Frames::TransformValueBytes];
    Frames::PackTransform(Value, Bytes);
    Frames::FTransformValue Back;
    CHECK(Frames::UnpackTransform(Bytes, sizeof Bytes, Back));
    CHECK(std::memcmp(&Back.Pose, &Value.Pose, sizeof(ThetaPosef)) == 0);
    CHECK(Back.Scale.y == 2.0f && Back.Scale.z == 0.5f);
    // The layout is XrPosef's then the scale: position y (1.7) is the sixth float.
    float Sixth;
    std::memcpy(&Sixth, Bytes + 5 * sizeof(float), sizeof Sixth);
    CHECK(Sixth == 1.7f);
    // A peer's wrong-sized, non-finite or zero-quaternion value is refused.
    CHECK(!Frames::UnpackTransform(Bytes, sizeof Bytes - 1, Back));
    CHECK(!Frames::UnpackTransform(nullptr, sizeof Bytes, Back));
    uint8_t Hostile[Frames::TransformValueBytes];
    std::memcpy(Hostile, Bytes, sizeof Bytes);
    const float Nan = std::nanf("");
    std::memcpy(Hostile + 4 * sizeof(float), &Nan, sizeof Nan);
    CHECK(!Frames::UnpackTransform(Hostile, sizeof Hostile, Back));
    std::memset(Hostile, 0, 4 * sizeof(float));
    std::memcpy(Hostile + 4 * sizeof(float), Bytes + 4 * sizeof(float), sizeof(float));
    CHECK(!Frames::UnpackTransform(Hostile, sizeof Hostile, Back));
}

void InterestSpheres() {
    ThetaInterestVolume V{};
    // 2 m forward, 1 m right, 1.5 m up of the origin (Unreal cm): OpenXR (1, 1.5, -2).
    CHECK(Frames::TryToInterestSphere(FVectorD(200, 100, 150), 1000.0, 200.0, 100.0, V));
    CHECK(V.kind == THETA_INTEREST_VOLUME_SPHERE);
    CHECK(Near(V.a[0], 1.0, 1e-6) && Near(V.a[1], 1.5, 1e-6) && Near(V.a[2], -2.0, 1e-6));
    CHECK(V.inner == 10.0f && V.outer == 12.0f);
    // Another world scale: 1 unit per metre.
    CHECK(Frames::TryToInterestSphere(FVectorF(0, 0, 0), 5.0, 0.0, 1.0, V));
    CHECK(V.inner == 5.0f && V.outer == 5.0f);
    // What the library would refuse is refused here, leaving the volume as it was.
    const double Nan = std::nan("");
    CHECK(!Frames::TryToInterestSphere(FVectorD(Nan, 0, 0), 10.0, 0.0, 100.0, V));
    CHECK(!Frames::TryToInterestSphere(FVectorD(0, 0, 0), -1.0, 0.0, 100.0, V));
    CHECK(!Frames::TryToInterestSphere(FVectorD(0, 0, 0), 10.0, -1.0, 100.0, V));
    CHECK(!Frames::TryToInterestSphere(FVectorD(0, 0, 0), Nan, 0.0, 100.0, V));
    CHECK(!Frames::TryToInterestSphere(FVectorD(0, 1e300, 0), 10.0, 0.0, 100.0, V));
    CHECK(!Frames::TryToInterestSphere(FVectorD(0, 0, 0), 10.0, 0.0, 0.0, V));
    CHECK(V.inner == 5.0f && V.a[0] == 0.0f);
    // The host reads positions from the transform value at XrPosef's position.
    Frames::FTransformValue Value;
    Value.Pose.position = ThetaVector3f{4.0f, 5.0f, 6.0f};
    uint8_t Bytes[Frames::TransformValueBytes];
    Frames::PackTransform(Value, Bytes);
    float Position[3];
    std::memcpy(Position, Bytes + Frames::TransformPositionOffset, sizeof Position);
    CHECK(Position[0] == 4.0f && Position[1] == 5.0f && Position[2] == 6.0f);
    // The declared fields: the quaternion at 0, the position at 16, the scale raw.
    ThetaField Fields[2];
    std::memset(Fields, 0xff, sizeof Fields);
    Frames::TransformFields(1.0f, 0.1f, Fields);
    CHECK(Fields[0].kind == THETA_FIELD_ROTATION && Fields[0].offset == 0 && Fields[0].precision == 0.1f);
    CHECK(Fields[1].kind == THETA_FIELD_POSITION && Fields[1].offset == 16 && Fields[1].precision == 1.0f);
    CHECK(Fields[1].offset + 12 <= Frames::TransformValueBytes - sizeof(ThetaVector3f));
    bool Zeroed = true;
    for (const ThetaField &F : Fields) {
        Zeroed = Zeroed && F.min == 0.0f && F.max == 0.0f && F.bytes == 0;
        for (uint8_t R : F.reserved) {
            Zeroed = Zeroed && R == 0;
        }
    }
    CHECK(Zeroed);
}

void TextHelpers() {
    uint8_t Fingerprint[THETA_FINGERPRINT_LEN];
    for (size_t I = 0; I < THETA_FINGERPRINT_LEN; ++I) {
        Fingerprint[I] = static_cast<uint8_t>(I * 37 + 5);
    }
    char Hex[Text::FingerprintHexDigits + 1];
    Text::FormatFingerprintHex(Fingerprint, Hex);
    CHECK(std::strlen(Hex) == 64 && std::strncmp(Hex, "052a4f", 6) == 0);
    uint8_t Parsed[THETA_FINGERPRINT_LEN] = {};
    CHECK(Text::ParseFingerprintHex(Hex, 64, Parsed) && std::memcmp(Parsed, Fingerprint, sizeof Parsed) == 0);
    // Upper case with ':' groups, as OpenSSL prints it.
    char Grouped[3 * THETA_FINGERPRINT_LEN];
    for (size_t I = 0; I < THETA_FINGERPRINT_LEN; ++I) {
        std::snprintf(Grouped + 3 * I, 4, "%02X:", Fingerprint[I]);
    }
    uint8_t FromGrouped[THETA_FINGERPRINT_LEN] = {};
    CHECK(Text::ParseFingerprintHex(Grouped, sizeof Grouped - 1, FromGrouped) &&
          std::memcmp(FromGrouped, Fingerprint, sizeof FromGrouped) == 0);
    uint8_t Untouched[THETA_FINGERPRINT_LEN] = {};
    CHECK(!Text::ParseFingerprintHex(Hex, 63, Untouched));   // a digit short
    char TooLong[66];
    std::memcpy(TooLong, Hex, 64);
    TooLong[64] = 'a';
    TooLong[65] = 'b';
    CHECK(!Text::ParseFingerprintHex(TooLong, 66, Untouched));  // a byte too many
    char NotHex[65];
    std::memcpy(NotHex, Hex, 65);
    NotHex[10] = 'g';
    CHECK(!Text::ParseFingerprintHex(NotHex, 64, Untouched));
    CHECK(!Text::ParseFingerprintHex(nullptr, 64, Untouched));
    uint8_t Zero[THETA_FINGERPRINT_LEN] = {};
    CHECK(std::memcmp(Untouched, Zero, sizeof Zero) == 0);

    // Entities: 64 bits through a Blueprint int64 and back; the creator is the high 16 bits.
    const uint64_t Entity = 0xFFFF000000000001ull;
    CHECK(Text::EntityToBlueprint(Entity) < 0);
    CHECK(Text::EntityFromBlueprint(Text::EntityToBlueprint(Entity)) == Entity);
    CHECK(Text::EntityCreator(Entity) == 0xFFFF);
    CHECK(Text::EntityCreator((uint64_t{3} << 48) | 42) == 3);

    // UTF-8 of a peer's class key.
    const uint8_t Ascii[] = {'A', 'v', 'a', 't', 'a', 'r'};
    const uint8_t Accented[] = {'C', 'a', 'f', 0xC3, 0xA9};           // "Café"
    const uint8_t Emoji[] = {0xF0, 0x9F, 0x98, 0x80};                  // U+1F600
    const uint8_t Overlong[] = {0xC0, 0xAF};                           // '/' in two bytes
    const uint8_t Surrogate[] = {0xED, 0xA0, 0x80};                    // U+D800
    const uint8_t Truncated[] = {'a', 0xE2, 0x82};                     // a cut euro sign
    const uint8_t TooHigh[] = {0xF4, 0x90, 0x80, 0x80};                // U+110000
    const uint8_t WithNul[] = {'a', 0, 'b'};
    CHECK(Text::IsValidClassKey(Ascii, sizeof Ascii));
    CHECK(Text::IsValidClassKey(Accented, sizeof Accented));
    CHECK(Text::IsValidClassKey(Emoji, sizeof Emoji));
    CHECK(!Text::IsValidClassKey(Overlong, sizeof Overlong));
    CHECK(!Text::IsValidClassKey(Surrogate, sizeof Surrogate));
    CHECK(!Text::IsValidClassKey(Truncated, sizeof Truncated));
    CHECK(!Text::IsValidClassKey(TooHigh, sizeof TooHigh));
    CHECK(!Text::IsValidClassKey(WithNul, sizeof WithNul));
    CHECK(!Text::IsValidClassKey(Ascii, 0));
    uint8_t Long[Text::MaxClassKeyBytes + 1];
    std::memset(Long, 'k', sizeof Long);
    CHECK(Text::IsValidClassKey(Long, Text::MaxClassKeyBytes));
    CHECK(!Text::IsValidClassKey(Long, sizeof Long));
}

}  // namespace

int main() {
    KnownPositions();
    KnownRotations();
    Handedness();
    RoundTrips();
    Refusals();
    TransformValues();
    InterestSpheres();
    TextHelpers();
    if (Failures != 0) {
        std::printf("%d of %d checks failed\n", Failures, Checks);
        return 1;
    }
    std::printf("ok %d checks\n", Checks);
    return 0;
}
