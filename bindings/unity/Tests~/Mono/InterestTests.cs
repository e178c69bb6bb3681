using System;
using System.Linq;
using System.Runtime.InteropServices;

namespace Theta.Tests
{
    /// <summary>
    /// Interest management through the C# layer: a host over loopback QUIC with a 10 m
    /// interest cell reads positions from the transform; its client's sphere holds exactly
    /// what the host says it sees, and what leaves it comes as Left events. Misuse throws
    /// with its status.
    /// </summary>
    public static class InterestTests
    {
        private static SessionConfig WithInterest() => new SessionConfig { InterestCell = 10 };

        /// <summary>A row of 20 entities along x, 5 m apart, positioned by their transform.</summary>
        private static Entity[] Row(Loopback loop)
        {
            var row = new Entity[20];
            for (int i = 0; i < row.Length; i++)
            {
                row[i] = loop.Host.Spawn();
                loop.Host.Set(row[i], loop.Types.Transform, new Transform(i * 5f));
            }
            // Transform.Position is its first field: three floats at offset 0.
            loop.Host.SetInterestSource(loop.Types.Transform, 0);
            return row;
        }

        /// <summary>Whether the client holds exactly what the host says it sees, entity by entity.</summary>
        private static Entity[] Held(Session host, Session client, ushort peer, Entity[] row)
        {
            foreach (Entity e in row)
            {
                Assert.Equal(host.Sees(peer, e), client.IsAlive(e), "entity " + e.Id + ": sees vs holds");
            }
            return row.Where(e => host.Sees(peer, e)).ToArray();
        }

        [Test]
        public static void AClientHoldsOnlyWhatItsSphereSeesAndWhatLeavesComesAsLeftEvents()
        {
            using (var loop = new Loopback(1, "127.0.0.1", WithInterest()))
            {
                Session host = loop.Host, client = loop.Clients[0];
                Entity[] row = Row(loop);
                // The head at x = 0: within 12 m are x = 0, 5, 10; they stay up to 14 m.
                client.SetInterest(InterestVolume.Sphere(new Vector3f(0, 1, 2), 12, 14));
                loop.TickUntil("the client holds its sphere",
                    () => host.Sees(1, row[0]) && client.StateHash == host.InterestHash(1));
                Entity[] held = Held(host, client, 1, row);
                Assert.Equal(3, held.Length, "entities within 12 m");
                Assert.True(held.SequenceEqual(row.Take(3)), "the first three");
                Assert.True(client.StateHash != host.StateHash, "not the whole world");
                Assert.Equal(5f, client.Get<Transform>(row[1], loop.Types.Transform).Position.X, "arrived whole");

                // The head walks to x = 50: the first three leave (Left, not despawned).
                int lefts = 0;
                client.SetInterest(new[] { InterestVolume.Sphere(new Vector3f(50, 1, 2), 12, 14) }, new uint[0]);
                loop.TickUntil("the client holds its new sphere",
                    () => host.Sees(1, row[10]) && lefts == 3 && client.StateHash == host.InterestHash(1),
                    (index, e) =>
                    {
                        if (index == 1 && e.Kind == SessionEventKind.Left)
                        {
                            Assert.True(row.Take(3).Contains(e.Entity), "a Left of what it saw: " + e.Entity.Id);
                            lefts++;
                        }
                    });
                Assert.True(!loop.Seen[1].Contains(SessionEventKind.Despawn), "leaving is not a despawn");
                held = Held(host, client, 1, row);
                Assert.True(held.SequenceEqual(row.Skip(8).Take(5)), "x = 40 to 60");
                foreach (Entity e in row.Take(3))
                {
                    Assert.True(!client.IsAlive(e) && host.IsAlive(e), "gone from the client, alive on the host");
                }

                // Scopes: the host puts the last entity in scope 5, the client subscribes.
                host.SetInterestScopes(row[19], new uint[] { 5 });
                client.SetInterest(new[] { InterestVolume.Sphere(new Vector3f(50, 1, 2), 12, 14) }, new uint[] { 5 });
                loop.TickUntil("the scoped entity",
                    () => host.Sees(1, row[19]) && client.StateHash == host.InterestHash(1));
                Assert.True(client.IsAlive(row[19]), "a subscribed scope's entity, 95 m away");
                host.SetPriority(row[19], 8);
            }
        }

        [Test]
        public static void TheHostsEngineSetsWhatAClientSeesWhenItDecidesAlone()
        {
            var config = new SessionConfig { InterestCell = 10, InterestHostOnly = true };
            using (var loop = new Loopback(1, "127.0.0.1", config))
            {
                Session host = loop.Host, client = loop.Clients[0];
                Entity[] row = Row(loop);
                client.SetInterest(InterestVolume.Sphere(new Vector3f(0, 0, 0), 1000));
                // The host's box: x from 20 to 30 (and the margin: 31).
                host.SetClientInterest(1, new[] { InterestVolume.Box(new Vector3f(20, -10, -10), new Vector3f(30, 10, 10), 1) }, new uint[0]);
                loop.TickUntil("the host's box", () => host.Sees(1, row[4]) && client.StateHash == host.InterestHash(1));
                Assert.True(Held(host, client, 1, row).SequenceEqual(row.Skip(4).Take(3)), "x = 20, 25, 30 only");
            }
        }

        [Test]
        public static void InterestVolumesHaveTheLayoutOfTheCAbi()
        {
            Type native = typeof(Session).Assembly.GetType("Theta.Interop.ThetaInterestVolume");
            Assert.Equal(Marshal.SizeOf(native), Marshal.SizeOf(typeof(InterestVolume)), "size");
            Assert.Equal(36, Marshal.SizeOf(typeof(InterestVolume)), "36 bytes");
            foreach (var pair in new[] { Tuple.Create("Kind", "kind"), Tuple.Create("A", "a"), Tuple.Create("B", "b"), Tuple.Create("Inner", "inner"), Tuple.Create("Outer", "outer") })
            {
                Assert.Equal((int)Marshal.OffsetOf(native, pair.Item2), (int)Marshal.OffsetOf(typeof(InterestVolume), pair.Item1), "offset of " + pair.Item1);
            }
            InterestVolume s = InterestVolume.Sphere(new Vector3f(1, 2, 3), 4);
            Assert.Equal(InterestVolumeKind.Sphere, s.Kind, "kind");
            Assert.Equal(4f, s.Outer, "no hysteresis: outer = radius");
            InterestVolume b = InterestVolume.Box(new Vector3f(0, 0, 0), new Vector3f(1, 1, 1), 0.5f);
            Assert.Equal((uint)1, (uint)b.Kind, "THETA_INTEREST_VOLUME_BOX");
            Assert.Equal(XrPose.PositionOffset, (int)Marshal.OffsetOf(typeof(XrPose), "Position"), "an XrPose's position, for SetInterestSource");
        }

        [Test]
        public static void InterestMisuseThrowsWithItsStatus()
        {
            using (var loop = new Loopback(1, "127.0.0.1", WithInterest()))
            {
                Session host = loop.Host, client = loop.Clients[0];
                Entity[] row = Row(loop);
                client.SetInterest(InterestVolume.Sphere(new Vector3f(0, 0, 0), 7, 8));
                loop.TickUntil("the client's sphere", () => host.Sees(1, row[1]) && client.StateHash == host.InterestHash(1));
                ulong before = client.StateHash;
                Action<Action, Status, string, string> expect = (call, status, cause, what) =>
                {
                    var e = Assert.Throws<ThetaException>(call, what);
                    Assert.Equal(status, e.Status, what);
                    Assert.True(e.Message.Contains(cause), what + ": " + e.Message);
                };
                var origin = new Vector3f(0, 0, 0);
                // Bad volumes, too many of them, too many scopes.
                expect(() => client.SetInterest(InterestVolume.Sphere(origin, -1, 1)), Status.InvalidArgument, "radius", "a negative radius");
                expect(() => client.SetInterest(InterestVolume.Sphere(origin, 5, 4)), Status.InvalidArgument, "outer", "outer below the radius");
                expect(() => client.SetInterest(InterestVolume.Sphere(new Vector3f(float.NaN, 0, 0), 1)), Status.InvalidArgument, "finite", "a NaN centre");
                expect(() => client.SetInterest(InterestVolume.Box(new Vector3f(2, 0, 0), new Vector3f(1, 1, 1))), Status.InvalidArgument, "min <= max", "a box inside out");
                var nine = Enumerable.Repeat(InterestVolume.Sphere(origin, 1), Session.MaxInterestVolumes + 1).ToArray();
                expect(() => client.SetInterest(nine, new uint[0]), Status.InvalidArgument, "9 given", "9 volumes");
                var many = Enumerable.Range(0, Session.MaxInterestScopes + 1).Select(i => (uint)i).ToArray();
                expect(() => host.SetInterestScopes(row[0], many), Status.InvalidArgument, "65 given", "65 scopes");
                expect(() => host.SetClientInterest(1, new InterestVolume[0], many), Status.InvalidArgument, "65 given", "65 subscriptions");
                // Positions and their source.
                expect(() => host.SetInterestPosition(row[0], new Vector3f(float.PositiveInfinity, 0, 0)), Status.InvalidArgument, "finite", "an infinite position");
                expect(() => host.SetInterestSource(loop.Types.Transform, 20), Status.InvalidArgument, "offset 20", "a position past the transform");
                expect(() => host.SetInterestSource(ComponentType.FromId(0xBAD)), Status.UnknownComponent, "not registered", "an unregistered component");
                // Priority weights.
                foreach (float weight in new[] { 0f, float.NaN, 1000f })
                {
                    expect(() => host.SetPriority(row[0], weight), Status.InvalidArgument, "priority weight", "weight " + weight);
                }
                // Dead entities, wrong roles, the host's own id.
                var ghost = new Entity(row[19].Id + 1000);
                expect(() => host.SetInterestScopes(ghost, new uint[] { 1 }), Status.DeadEntity, "no live", "an unknown entity's scopes");
                expect(() => host.Sees(1, ghost), Status.DeadEntity, "not alive", "sees an unknown entity");
                expect(() => client.SetInterestSource(loop.Types.Transform), Status.WrongRole, "host", "a client's host call");
                expect(() => client.InterestHash(1), Status.WrongRole, "host", "a client's hash");
                expect(() => host.SetInterest(InterestVolume.Sphere(origin, 1)), Status.WrongRole, "client", "a host's client call");
                expect(() => host.Sees(0, row[0]), Status.InvalidArgument, "host's own", "the host's own id");
                Assert.Throws<ArgumentOutOfRangeException>(() => host.SetInterestSource(loop.Types.Transform, -1), "a negative offset");

                // None of it changed anything.
                for (int i = 0; i < 20; i++)
                {
                    loop.TickOnce();
                }
                Assert.Equal(before, client.StateHash, "the client holds what it held");
                Assert.Equal(before, host.InterestHash(1), "the host agrees");
            }

            // A host without an interest cell.
            using (var plain = new Loopback(0))
            {
                Entity e = plain.Host.Spawn();
                var off = Assert.Throws<ThetaException>(() => plain.Host.SetInterestScopes(e, new uint[] { 1 }), "interest off");
                Assert.Equal(Status.InterestOff, off.Status, "status");
                Assert.True(plain.Host.Sees(1, e), "without interest every client sees everything");
            }
        }
    }
}
