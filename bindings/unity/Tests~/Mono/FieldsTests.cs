using System;
using System.Runtime.InteropServices;

namespace Theta.Tests
{
    /// <summary>An XrPose and a raw tag: 32 bytes, the tag not declared (kept bit-exact).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct TaggedPose
    {
        public XrPose Pose;
        public uint Tag;
    }

    /// <summary>
    /// Declared fields through the C# layer: values read back quantised within their
    /// precisions and undeclared bytes bit-exact; a value that does not quantise throws
    /// with Status.NotQuantisable and writes nothing; misuse throws with its status; a
    /// replica declaring the same fields applies the world's snapshot; a host and a client
    /// over loopback QUIC declaring the same fields converge, and a client declaring other
    /// fields is refused at join.
    /// </summary>
    public static class FieldsTests
    {
        private static TaggedPose PoseOf(float angle, float x, float y, float z, uint tag)
        {
            float s = (float)Math.Sin(angle / 2), c = (float)Math.Cos(angle / 2);
            return new TaggedPose
            {
                Pose = new XrPose(new Quaternionf(0.48f * s, 0.6f * s, 0.64f * s, c), new Vector3f(x, y, z)),
                Tag = tag,
            };
        }

        private static double DegreesBetween(Quaternionf a, Quaternionf b)
        {
            double dot = (double)a.X * b.X + (double)a.Y * b.Y + (double)a.Z * b.Z + (double)a.W * b.W;
            double norm = Math.Sqrt((double)b.X * b.X + (double)b.Y * b.Y + (double)b.Z * b.Z + (double)b.W * b.W);
            return 2 * Math.Acos(Math.Min(1, Math.Abs(dot) / norm)) * 180 / Math.PI;
        }

        private static void AssertWithin(TaggedPose sent, TaggedPose got, float mm, float degrees)
        {
            double angle = DegreesBetween(sent.Pose.Orientation, got.Pose.Orientation);
            Assert.True(angle <= degrees + 1e-4, "rotation " + angle + " degrees off");
            Vector3f a = sent.Pose.Position, b = got.Pose.Position;
            foreach (double error in new[] { a.X - b.X, a.Y - b.Y, a.Z - b.Z })
            {
                Assert.True(Math.Abs(error) * 1000 <= mm + 1e-3, "position " + error * 1000 + " mm off");
            }
            Assert.Equal(sent.Tag, got.Tag, "the raw tag is bit-exact");
        }

        private static T Read<T>(World world, Entity entity, ComponentType type) where T : struct
        {
            var bytes = new byte[Marshal.SizeOf<T>()];
            Assert.Equal(bytes.Length, world.Get(entity, type, bytes), "value length");
            return MemoryMarshal.Read<T>(bytes);
        }

        [Test]
        public static void DeclaredFieldsReadBackWithinTheirPrecisionAndNaNIsRefused()
        {
            using (var world = new World())
            {
                ComponentType pose = world.RegisterFixed<TaggedPose>("fields.Pose");
                ComponentType gauge = world.RegisterFixed("fields.Gauge", 8);
                world.DeclareFields(pose, XrPose.Fields());
                world.DeclareFields(pose, XrPose.Fields(1f, 0.1f)); // the same again: a no-op
                world.DeclareFields(gauge, Field.Scalar(0, 0, 10, 0.01f), Field.Int(4, 2), Field.Flags(6, 1));

                Entity e = world.Spawn();
                TaggedPose sent = PoseOf(0.9f, 1.2345678f, -0.0004f, 123.456789f, 0xdeadbeef);
                Assert.Equal(Change.Inserted, world.Set(e, pose, sent), "inserted");
                TaggedPose got = Read<TaggedPose>(world, e, pose);
                Assert.True(!got.Pose.Position.Equals(sent.Pose.Position), "quantised");
                AssertWithin(sent, got, 1f, 0.1f);
                Assert.Equal(Change.Unchanged, world.Set(e, pose, got), "a quantised value is a fixed point");

                var g = new byte[] { 0, 0, 0, 0, 0x34, 0x12, 0xa5, 0xff };
                BitConverter.GetBytes(3.14159f).CopyTo(g, 0);
                world.Set(e, gauge, g);
                var back = new byte[8];
                world.Get(e, gauge, back);
                Assert.True(Math.Abs(BitConverter.ToSingle(back, 0) - 3.14159f) <= 0.01f, "scalar within 0.01");
                Assert.True(new ReadOnlySpan<byte>(back, 4, 4).SequenceEqual(new ReadOnlySpan<byte>(g, 4, 4)), "int, flags, raw exact");

                ulong hash = world.StateHash;
                TaggedPose bad = sent;
                bad.Pose.Position.Y = float.NaN;
                var nan = Assert.Throws<ThetaException>(() => world.Set(e, pose, bad), "NaN");
                Assert.Equal(Status.NotQuantisable, nan.Status, "status");
                Assert.True(nan.Message.Contains("fields.Pose") && nan.Message.Contains("not a finite number"), nan.Message);
                BitConverter.GetBytes(10.5f).CopyTo(g, 0);
                var range = Assert.Throws<ThetaException>(() => world.Set(e, gauge, g), "out of range");
                Assert.Equal(Status.NotQuantisable, range.Status, "status");
                Assert.Equal(hash, world.StateHash, "nothing written");
            }
        }

        private static Status StatusOf(Action declare) => Assert.Throws<ThetaException>(declare, "declare").Status;

        [Test]
        public static void MisuseOfDeclaringThrowsWithItsStatusAndChangesNothing()
        {
            var world = new World();
            ComponentType pose = world.RegisterFixed<TaggedPose>("fields.Pose");
            ComponentType raw = world.RegisterFixed("fields.Raw", 12);
            ComponentType text = world.RegisterVariable("fields.Text", 16);
            world.DeclareFields(pose, XrPose.Fields());

            Assert.Throws<ArgumentNullException>(() => world.DeclareFields(raw, (Field[])null), "null");
            Assert.Throws<ArgumentOutOfRangeException>(() => Field.Int(0, 3), "a 3-byte integer");
            Assert.Throws<ArgumentOutOfRangeException>(() => Field.Position(-1, 1), "a negative offset");
            Assert.Equal(Status.RegistryConflict, StatusOf(() => world.DeclareFields(pose, XrPose.Fields(2f))), "other fields");
            Assert.Equal(Status.InvalidArgument, StatusOf(() => world.DeclareFields(raw, Field.Position(0, 1), Field.Flags(8, 1))), "overlap");
            Assert.Equal(Status.InvalidArgument, StatusOf(() => world.DeclareFields(raw, Field.Position(4, 1))), "overrun");
            Assert.Equal(Status.InvalidArgument, StatusOf(() => world.DeclareFields(raw, Field.Position(0, 0))), "precision 0");
            Assert.Equal(Status.InvalidArgument, StatusOf(() => world.DeclareFields(raw, Field.Rotation(0, 1))), "a rotation in 12 bytes");
            Assert.Equal(Status.InvalidArgument, StatusOf(() => world.DeclareFields(text, Field.Position(0, 1))), "variable size");
            Assert.Equal(Status.UnknownComponent, StatusOf(() => world.DeclareFields(ComponentType.FromId(4242), Field.Position(0, 1))), "unknown");
            var many = new Field[65];
            for (int i = 0; i < many.Length; i++)
            {
                many[i] = Field.Flags(0, 1);
            }
            Assert.Equal(Status.InvalidArgument, StatusOf(() => world.DeclareFields(raw, many)), "65 fields");
            // Nothing changed: the raw type stays bit-exact; then fields after a value.
            Entity e = world.Spawn();
            var bytes = new byte[12];
            BitConverter.GetBytes(0.1234567f).CopyTo(bytes, 0);
            world.Set(e, raw, bytes);
            var back = new byte[12];
            world.Get(e, raw, back);
            Assert.True(new ReadOnlySpan<byte>(back).SequenceEqual(bytes), "raw is bit-exact");
            var late = Assert.Throws<ThetaException>(() => world.DeclareFields(raw, Field.Position(0, 1)), "after a value");
            Assert.Equal(Status.InvalidArgument, late.Status, "status");
            Assert.True(late.Message.Contains("first value"), late.Message);
            world.Dispose();
            Assert.Throws<ObjectDisposedException>(() => world.DeclareFields(pose, XrPose.Fields()), "a disposed world");
        }

        [Test]
        public static void AReplicaDeclaringTheSameFieldsAppliesTheWorldsSnapshot()
        {
            using (var world = new World())
            using (var replica = new Replica())
            {
                ComponentType pose = world.RegisterFixed<TaggedPose>("fields.Pose");
                world.DeclareFields(pose, XrPose.Fields(0.5f, 0.05f));
                Entity e = world.Spawn();
                world.Set(e, pose, PoseOf(1.1f, 3.0001f, 4.0002f, 5.0003f, 42));

                Assert.Equal(pose, replica.RegisterFixed<TaggedPose>("fields.Pose"), "the same id");
                replica.DeclareFields(pose, XrPose.Fields(0.5f, 0.05f));
                var conflict = Assert.Throws<ThetaException>(() => replica.DeclareFields(pose, XrPose.Fields()), "other fields");
                Assert.Equal(Status.RegistryConflict, conflict.Status, "status");
                using (Snapshot snapshot = world.TakeSnapshot())
                {
                    for (int i = 0; i < snapshot.ChunkCount; i++)
                    {
                        replica.Apply(snapshot.Chunk(i));
                    }
                }
                Assert.Equal(world.StateHash, replica.StateHash, "replica hash");
            }
        }

        [Test]
        public static void AHostAndAClientDeclaringTheSameFieldsConvergeAndOtherFieldsAreRefused()
        {
            // The fixture's Transform: a position at 0, a rotation at 12.
            Action<World, Types> declare = (w, t) => w.DeclareFields(t.Transform, Field.Position(0, 1), Field.Rotation(12, 0.1f));
            using (var loop = new Loopback(1, "127.0.0.1", null, declare))
            {
                Session host = loop.Host, client = loop.Clients[0];
                var entities = new Entity[8];
                for (int i = 0; i < entities.Length; i++)
                {
                    entities[i] = host.Spawn();
                    var t = new Transform(i * 1.11111f);
                    t.Position.Z = -0.00077f * i;
                    host.Set(entities[i], loop.Types.Transform, t);
                }
                loop.TickUntil("convergence", loop.Converged);
                for (int i = 0; i < entities.Length; i++)
                {
                    Transform h = host.Get<Transform>(entities[i], loop.Types.Transform);
                    Transform c = client.Get<Transform>(entities[i], loop.Types.Transform);
                    Assert.Equal(h.Position, c.Position, "the client holds the host's quantised value");
                    Assert.True(Math.Abs(h.Position.X - i * 1.11111f) <= 0.001f + 1e-6f, "within 1 mm");
                }
                var nan = new Transform(float.NaN);
                var refused = Assert.Throws<ThetaException>(() => host.Set(entities[0], loop.Types.Transform, nan), "NaN");
                Assert.Equal(Status.NotQuantisable, refused.Status, "a session write");

                // A client declaring its position to 2 mm: another registry, refused at join.
                Types t2;
                using (World other = Types.NewWorld(out t2))
                using (var buffer = new SessionEventBuffer(16))
                {
                    other.DeclareFields(t2.Transform, Field.Position(0, 2), Field.Rotation(12, 0.1f));
                    using (Session stranger = Session.Join("127.0.0.1:" + host.LocalPort, host.Fingerprint(),
                        host.MintToken(2, TimeSpan.FromMinutes(1)), other))
                    {
                        string reason = null;
                        DisconnectCause cause = 0;
                        DateTime deadline = DateTime.UtcNow + Loopback.Wait;
                        while (reason == null && DateTime.UtcNow < deadline)
                        {
                            loop.TickOnce();
                            stranger.Tick();
                            while (stranger.Poll(buffer) > 0)
                            {
                                for (int i = 0; i < buffer.Count; i++)
                                {
                                    SessionEvent e = buffer.At(i);
                                    if (e.Kind == SessionEventKind.Disconnected)
                                    {
                                        reason = e.Text;
                                        cause = e.Cause;
                                    }
                                }
                            }
                            System.Threading.Thread.Sleep(2);
                        }
                        Assert.Equal(DisconnectCause.Refused, cause, "refused: " + reason);
                        Assert.True(reason.Contains("registry"), reason);
                    }
                }
            }
        }
    }
}
