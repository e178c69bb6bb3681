using System;
using System.Runtime.InteropServices;

namespace Theta
{
    /// <summary>A 3-vector of floats (layout of XrVector3f and UnityEngine.Vector3).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Vector3f : IEquatable<Vector3f>
    {
        public float X, Y, Z;

        public Vector3f(float x, float y, float z)
        {
            X = x;
            Y = y;
            Z = z;
        }

        public bool Equals(Vector3f o) => X == o.X && Y == o.Y && Z == o.Z;

        public override bool Equals(object obj) => obj is Vector3f o && Equals(o);

        public override int GetHashCode() => X.GetHashCode() ^ (Y.GetHashCode() << 7) ^ (Z.GetHashCode() << 14);

        public override string ToString() => "(" + X + ", " + Y + ", " + Z + ")";
    }

    /// <summary>A quaternion x, y, z, w (layout of XrQuaternionf and UnityEngine.Quaternion).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Quaternionf : IEquatable<Quaternionf>
    {
        public float X, Y, Z, W;

        public Quaternionf(float x, float y, float z, float w)
        {
            X = x;
            Y = y;
            Z = z;
            W = w;
        }

        public static Quaternionf Identity => new Quaternionf(0, 0, 0, 1);

        /// <summary><paramref name="v"/> rotated by this (unit) quaternion.</summary>
        public Vector3f Rotate(Vector3f v)
        {
            // v + 2 * cross(q.xyz, cross(q.xyz, v) + w * v)
            float cx = Y * v.Z - Z * v.Y + W * v.X;
            float cy = Z * v.X - X * v.Z + W * v.Y;
            float cz = X * v.Y - Y * v.X + W * v.Z;
            return new Vector3f(
                v.X + 2 * (Y * cz - Z * cy),
                v.Y + 2 * (Z * cx - X * cz),
                v.Z + 2 * (X * cy - Y * cx));
        }

        public bool Equals(Quaternionf o) => X == o.X && Y == o.Y && Z == o.Z && W == o.W;

        public override bool Equals(object obj) => obj is Quaternionf o && Equals(o);

        public override int GetHashCode() => X.GetHashCode() ^ (Y.GetHashCode() << 5) ^ (Z.GetHashCode() << 10) ^ (W.GetHashCode() << 15);

        public override string ToString() => "(" + X + ", " + Y + ", " + Z + ", " + W + ")";
    }

    /// <summary>
    /// A pose in OpenXR's frame (right-handed, +Y up, -Z forward, metres), laid out as
    /// XrPosef: orientation first. What the library sends and samples.
    /// </summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct XrPose
    {
        /// <summary>
        /// Byte offset of <see cref="Position"/>: what a host passes to
        /// <see cref="Session.SetInterestSource"/> for a component holding an XrPose.
        /// </summary>
        public const int PositionOffset = 16;

        public Quaternionf Orientation;
        public Vector3f Position;

        public XrPose(Quaternionf orientation, Vector3f position)
        {
            Orientation = orientation;
            Position = position;
        }

        /// <summary>
        /// The declared fields of a component holding an XrPose (see
        /// <see cref="World.DeclareFields(ComponentType, Field[])"/>): its orientation within
        /// <paramref name="rotationDegrees"/> and its position within
        /// <paramref name="positionMillimetres"/> (defaults: 0.1 degrees, 1 mm). Declare them
        /// on every peer alike: they are part of the registry hash checked at join.
        /// </summary>
        public static Field[] Fields(float positionMillimetres = 1f, float rotationDegrees = 0.1f)
        {
            return new[] { Field.Rotation(0, rotationDegrees), Field.Position(PositionOffset, positionMillimetres) };
        }
    }

    /// <summary>
    /// A pose in Unity's frame (left-handed, +Y up, +Z forward, metres), laid out as
    /// UnityEngine.Pose: position first.
    /// </summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct UnityPose
    {
        public Vector3f Position;
        public Quaternionf Rotation;

        public UnityPose(Vector3f position, Quaternionf rotation)
        {
            Position = position;
            Rotation = rotation;
        }
    }

    /// <summary>
    /// Conversions between OpenXR's right-handed frame and Unity's left-handed one. Both
    /// are +X right, +Y up; they differ in the sign of Z (OpenXR looks down -Z, Unity down
    /// +Z), a mirror through the XY plane. A mirrored rotation keeps its angle about the
    /// mirrored axis, negated: (x, y, z, w) becomes (-x, -y, z, w). Each conversion is its
    /// own inverse.
    /// </summary>
    public static class Frames
    {
        public static Vector3f ToUnity(Vector3f openxr) => new Vector3f(openxr.X, openxr.Y, -openxr.Z);

        public static Vector3f ToOpenXr(Vector3f unity) => new Vector3f(unity.X, unity.Y, -unity.Z);

        public static Quaternionf ToUnity(Quaternionf openxr) => new Quaternionf(-openxr.X, -openxr.Y, openxr.Z, openxr.W);

        public static Quaternionf ToOpenXr(Quaternionf unity) => new Quaternionf(-unity.X, -unity.Y, unity.Z, unity.W);

        public static UnityPose ToUnity(XrPose pose) => new UnityPose(ToUnity(pose.Position), ToUnity(pose.Orientation));

        public static XrPose ToOpenXr(UnityPose pose) => new XrPose(ToOpenXr(pose.Rotation), ToOpenXr(pose.Position));
    }
}
