using System;

namespace Theta.Tests
{
    public static class FrameTests
    {
        private static bool Near(Vector3f a, Vector3f b) => Math.Abs(a.X - b.X) < 1e-5 && Math.Abs(a.Y - b.Y) < 1e-5 && Math.Abs(a.Z - b.Z) < 1e-5;

        private static Quaternionf Axis(float x, float y, float z, double degrees)
        {
            double half = degrees * Math.PI / 360;
            float s = (float)Math.Sin(half);
            return new Quaternionf(x * s, y * s, z * s, (float)Math.Cos(half));
        }

        [Test]
        public static void ForwardIsMinusZInOpenXrAndPlusZInUnity()
        {
            Assert.Equal(new Vector3f(0, 0, 1), Frames.ToUnity(new Vector3f(0, 0, -1)), "OpenXR forward in Unity");
            Assert.Equal(new Vector3f(1, 2, -3), Frames.ToOpenXr(new Vector3f(1, 2, 3)), "a point");
            // A head turned 90 degrees to the left (OpenXR: +90 about +Y, counter-clockwise
            // from above in a right-handed frame) looks at -X in both frames.
            Quaternionf left = Axis(0, 1, 0, 90);
            Vector3f gaze = left.Rotate(new Vector3f(0, 0, -1));
            Assert.True(Near(gaze, new Vector3f(-1, 0, 0)), "OpenXR gaze " + gaze);
            Vector3f unityGaze = Frames.ToUnity(left).Rotate(new Vector3f(0, 0, 1));
            Assert.True(Near(unityGaze, new Vector3f(-1, 0, 0)), "Unity gaze " + unityGaze);
        }

        [Test]
        public static void ConversionsCommuteWithRotationAndRoundTrip()
        {
            var random = new Random(7);
            for (int i = 0; i < 1000; i++)
            {
                var axis = new Vector3f((float)random.NextDouble() - 0.5f, (float)random.NextDouble() - 0.5f, (float)random.NextDouble() - 0.5f);
                float n = (float)Math.Sqrt(axis.X * axis.X + axis.Y * axis.Y + axis.Z * axis.Z);
                Quaternionf q = Axis(axis.X / n, axis.Y / n, axis.Z / n, random.NextDouble() * 720 - 360);
                var v = new Vector3f((float)random.NextDouble() * 4 - 2, (float)random.NextDouble() * 4 - 2, (float)random.NextDouble() * 4 - 2);
                // Rotating in OpenXR's frame then converting equals converting then rotating.
                Vector3f a = Frames.ToUnity(q.Rotate(v));
                Vector3f b = Frames.ToUnity(q).Rotate(Frames.ToUnity(v));
                Assert.True(Near(a, b), "commutes: " + a + " vs " + b);
                Assert.Equal(q, Frames.ToOpenXr(Frames.ToUnity(q)), "rotation round trip");
                Assert.Equal(v, Frames.ToUnity(Frames.ToOpenXr(v)), "position round trip");
                var pose = new XrPose(q, v);
                UnityPose unity = Frames.ToUnity(pose);
                XrPose back = Frames.ToOpenXr(unity);
                Assert.True(back.Orientation.Equals(q) && back.Position.Equals(v), "pose round trip");
            }
        }

        [Test]
        public static unsafe void PoseLayoutsMatchOpenXrAndUnity()
        {
            Assert.Equal(28, sizeof(XrPose), "XrPosef is 28 bytes");
            var pose = new XrPose(new Quaternionf(1, 2, 3, 4), new Vector3f(5, 6, 7));
            float* f = (float*)&pose;
            Assert.True(f[0] == 1 && f[3] == 4 && f[4] == 5, "XrPosef: orientation x y z w, then position");
            var unity = new UnityPose(new Vector3f(5, 6, 7), new Quaternionf(1, 2, 3, 4));
            float* u = (float*)&unity;
            Assert.True(u[0] == 5 && u[3] == 1 && u[6] == 4, "UnityEngine.Pose: position, then rotation");
        }
    }
}
