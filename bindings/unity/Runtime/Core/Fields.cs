using System;
using System.Runtime.InteropServices;
using Theta.Interop;

namespace Theta
{
    /// <summary>What a <see cref="Field"/> describes.</summary>
    public enum FieldKind : uint
    {
        /// <summary>Three floats (x, y, z, metres), within a precision in millimetres.</summary>
        Position = 0,
        /// <summary>A quaternion (x, y, z, w floats), within a precision in degrees.</summary>
        Rotation = 1,
        /// <summary>A float in a range, within an absolute precision.</summary>
        Scalar = 2,
        /// <summary>A little-endian integer of 1, 2, 4 or 8 bytes, bit-exact.</summary>
        Int = 3,
        /// <summary>Bit flags of 1, 2, 4 or 8 bytes, bit-exact.</summary>
        Flags = 4,
    }

    /// <summary>
    /// One declared field of a fixed-size component (see <see cref="World.DeclareFields(ComponentType, Field[])"/>):
    /// what the bytes at an offset mean, so that they are quantised to a stated precision
    /// and cost fewer bytes on the wire. Bytes no field names stay raw and bit-exact.
    /// Laid out as the C ABI's ThetaField (32 bytes), so arrays cross without copying.
    /// </summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Field
    {
        private ThetaField native;

        /// <summary>Three floats (x, y, z, metres) at <paramref name="offset"/>, within <paramref name="millimetres"/> per axis (at least 0.001).</summary>
        public static Field Position(int offset, float millimetres) => Make(FieldKind.Position, offset, millimetres);

        /// <summary>A quaternion (x, y, z, w) at <paramref name="offset"/>, within <paramref name="degrees"/> (0.001 to 90).</summary>
        public static Field Rotation(int offset, float degrees) => Make(FieldKind.Rotation, offset, degrees);

        /// <summary>A float at <paramref name="offset"/> in [<paramref name="min"/>, <paramref name="max"/>], within <paramref name="precision"/>.</summary>
        public static Field Scalar(int offset, float min, float max, float precision)
        {
            Field f = Make(FieldKind.Scalar, offset, precision);
            f.native.min = min;
            f.native.max = max;
            return f;
        }

        /// <summary>A little-endian integer of <paramref name="bytes"/> (1, 2, 4 or 8) at <paramref name="offset"/>, bit-exact.</summary>
        public static Field Int(int offset, int bytes) => Sized(FieldKind.Int, offset, bytes);

        /// <summary>Bit flags of <paramref name="bytes"/> (1, 2, 4 or 8) at <paramref name="offset"/>, bit-exact.</summary>
        public static Field Flags(int offset, int bytes) => Sized(FieldKind.Flags, offset, bytes);

        public FieldKind Kind => (FieldKind)native.kind;

        public int Offset => (int)native.offset;

        /// <summary>Millimetres (position), degrees (rotation), absolute (scalar); 0 otherwise.</summary>
        public float Precision => native.precision;

        public float Min => native.min;

        public float Max => native.max;

        /// <summary>The width of an integer or flags; 0 otherwise.</summary>
        public int Bytes => native.bytes;

        private static Field Make(FieldKind kind, int offset, float precision)
        {
            if (offset < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(offset), "an offset is not negative");
            }
            // Zeroed: members a kind does not use, and the reserved bytes, must be 0.
            var f = new Field();
            f.native.kind = (uint)kind;
            f.native.offset = (uint)offset;
            f.native.precision = precision;
            return f;
        }

        private static Field Sized(FieldKind kind, int offset, int bytes)
        {
            if (bytes != 1 && bytes != 2 && bytes != 4 && bytes != 8)
            {
                throw new ArgumentOutOfRangeException(nameof(bytes), "integers and flags are 1, 2, 4 or 8 bytes");
            }
            Field f = Make(kind, offset, 0);
            f.native.bytes = (byte)bytes;
            return f;
        }

        public override string ToString() =>
            Kind + " at " + Offset + (Bytes != 0 ? " (" + Bytes + " bytes)" : " to " + Precision)
            + (Kind == FieldKind.Scalar ? " in [" + Min + ", " + Max + "]" : "");

    }
}
