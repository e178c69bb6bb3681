using System;
using System.IO;
using System.Linq;
using System.Threading;

namespace Theta.Tests
{
    public static class SessionTests
    {
        [Test]
        public static void AHostAndTwoClientsConvergeThroughSingleAndBatchWrites()
        {
            // The second client joins by host name: resolved off the caller's thread.
            using (var loop = new Loopback(1))
            using (World registry = Types.NewWorld(out _))
            {
                Session byName = Session.Join("localhost:" + loop.Host.LocalPort, loop.Host.Fingerprint(),
                    loop.Host.MintToken(2, TimeSpan.FromMinutes(1)), registry);
                loop.Clients.Add(byName);
                loop.Seen.Add(new System.Collections.Generic.List<SessionEventKind>());
                loop.TickUntil("the join by name", () => byName.Peer.HasValue);
                Assert.Equal((ushort?)2, byName.Peer, "the peer id the token named");

                Session host = loop.Host;
                Types t = loop.Types;
                var entities = new Entity[50];
                var transforms = new Transform[50];
                for (int i = 0; i < entities.Length; i++)
                {
                    entities[i] = host.Spawn();
                    transforms[i] = new Transform(i);
                }
                BatchResult first = host.SetBatch(t.Transform, entities, transforms);
                Assert.Equal(50UL, first.Inserted, "inserted by the batch");
                transforms[3].Position.Y = 42;
                BatchResult second = host.SetBatch(t.Transform, entities, transforms);
                Assert.Equal(1UL, second.Updated, "one value changed");
                Assert.Equal(49UL, second.Unchanged, "the others are identical bytes");
                Assert.Equal(Change.Inserted, host.Set(entities[0], t.Name, System.Text.Encoding.UTF8.GetBytes("zero")), "a name");
                Assert.Equal(Change.Updated, host.Set(entities[1], t.Transform, new Transform(-1)), "a single set");
                loop.TickUntil("convergence", loop.Converged);

                int updates = 0;
                Transform seen = default(Transform);
                Assert.True(host.Remove(entities[0], t.Name), "the name was there");
                host.Despawn(entities[2]);
                host.Set(entities[3], t.Transform, new Transform(7));
                loop.TickUntil("the removal, despawn and update", () =>
                    loop.Converged() && loop.Seen.Skip(1).All(s => s.Contains(SessionEventKind.Remove) && s.Contains(SessionEventKind.Despawn)),
                    (index, e) =>
                    {
                        if (index == 1 && e.Kind == SessionEventKind.Update && e.Entity == entities[3])
                        {
                            updates++;
                            seen = e.Value<Transform>();
                        }
                    });
                Assert.True(updates >= 1, "the client saw the update of entity 3");
                Assert.Equal(7f, seen.Position.X, "its value, read from the event's span");
                foreach (Session client in loop.Clients)
                {
                    Assert.True(!client.IsAlive(entities[2]), "despawned everywhere");
                    Assert.Equal(-1f, client.Get<Transform>(entities[1], t.Transform).Position.X, "the single set");
                    Assert.True(loop.Seen[loop.Clients.IndexOf(client) + 1].Contains(SessionEventKind.Spawn), "spawn events");
                }
            }
        }

        [Test]
        public static void AClientWritesItsOwnEntitiesAndTheHostHasThem()
        {
            using (var loop = new Loopback(1))
            {
                Session client = loop.Clients[0];
                Entity mine = client.Spawn();
                Assert.Equal((ushort)1, mine.Creator, "in the client's id range");
                client.Set(mine, loop.Types.Transform, new Transform(5));
                loop.TickUntil("the client's write at the host", () => loop.Host.IsAlive(mine) && loop.Converged());
                Assert.Equal(5f, loop.Host.Get<Transform>(mine, loop.Types.Transform).Position.X, "the value");
            }
        }

        [Test]
        public static void APoseInUnitysFrameArrivesInUnitysFrame()
        {
            using (var loop = new Loopback(1))
            {
                // Unity: 1.6 m up, 0.5 m forward (+Z), turned 90 degrees to the right (about +Y).
                float h = (float)Math.Sqrt(0.5);
                var head = new UnityPose(new Vector3f(0.1f, 1.6f, 0.5f), new Quaternionf(0, h, 0, h));
                XrPose sampledXr = default(XrPose);
                UnityPose sampled = default(UnityPose);
                loop.TickUntil("the host's head at the client", () =>
                {
                    loop.Host.PushPose(Device.Head, head, loop.Host.Now);
                    PoseFlags flags;
                    return loop.Clients[0].TrySamplePose(0, Device.Head, loop.Clients[0].Now, out sampled, out flags)
                        && loop.Clients[0].TrySamplePose(0, Device.Head, loop.Clients[0].Now, out sampledXr, out flags)
                        && flags == PoseFlags.Tracked;
                });
                Assert.True(Math.Abs(sampled.Position.Z - 0.5f) < 0.01f, "forward stays +Z in Unity's frame: " + sampled.Position);
                Assert.True(Math.Abs(sampledXr.Position.Z + 0.5f) < 0.01f, "and is -Z in OpenXR's: " + sampledXr.Position);
                // q and -q are one rotation: compare by the dot product.
                Assert.True(Math.Abs(Dot(sampled.Rotation, head.Rotation)) > 0.9999f, "the rotation: " + sampled.Rotation);
                Assert.True(Math.Abs(Dot(sampledXr.Orientation, new Quaternionf(0, -h, 0, h))) > 0.9999f, "negated about Y in OpenXR's frame: " + sampledXr.Orientation);
            }
        }

        private static float Dot(Quaternionf a, Quaternionf b) => a.X * b.X + a.Y * b.Y + a.Z * b.Z + a.W * b.W;

        /// <summary>Threads of this process named theta-net (a session's runtime).</summary>
        private static int SessionThreads()
        {
            int count = 0;
            foreach (string task in Directory.GetDirectories("/proc/self/task"))
            {
                try
                {
                    if (File.ReadAllText(Path.Combine(task, "comm")).Trim() == "theta-net")
                    {
                        count++;
                    }
                }
                catch (IOException)
                {
                    // The thread ended while we looked.
                }
            }
            return count;
        }

        /// <summary>
        /// Finishes what earlier tests left (a close still running, a session only a
        /// finalizer will close), so that a thread count sees only this test's sessions.
        /// </summary>
        private static void SettleEarlierSessions()
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            Assert.Equal(0, Session.WaitClosed(TimeSpan.FromSeconds(10)), "earlier closes finished");
        }

        [Test]
        public static void DisposeReturnsAtOnceAndWaitClosedLeavesNoSessionThread()
        {
            SettleEarlierSessions();
            int before = SessionThreads();
            var loop = new Loopback(2);
            Assert.True(SessionThreads() >= before + 3, "a thread per session while they run");
            loop.Dispose();
            Assert.Throws<ObjectDisposedException>(() => loop.Host.Tick(), "a disposed session");
            Assert.Equal(0, Session.WaitClosed(TimeSpan.FromSeconds(10)), "closes pending after 10 s");
            Assert.Equal(before, SessionThreads(), "session threads after WaitClosed");
        }

        [Test]
        public static void ASessionNeverDisposedIsClosedByItsFinalizer()
        {
            SettleEarlierSessions();
            int before = SessionThreads();
            Forget();
            GC.Collect();
            GC.WaitForPendingFinalizers();
            Assert.Equal(0, Session.WaitClosed(TimeSpan.FromSeconds(10)), "closes pending after 10 s");
            Assert.Equal(before, SessionThreads(), "session threads after the finalizer's close");
        }

        private static void Forget()
        {
            World world = Types.NewWorld(out _);
            Session.Host("127.0.0.1:0", world).Tick();
        }

        [Test]
        public static void ASnapshotAppliedToAReplicaGivesTheSameState()
        {
            Types t;
            using (World world = Types.NewWorld(out t))
            using (var replica = new Replica())
            {
                for (int i = 0; i < 100; i++)
                {
                    world.Set(world.Spawn(), t.Transform, new Transform(i));
                }
                using (Snapshot snapshot = world.TakeSnapshot(1024))
                {
                    Assert.True(snapshot.ChunkCount > 1, "chunks of at most 1 KiB");
                    for (int i = snapshot.ChunkCount - 1; i >= 0; i--)
                    {
                        replica.Apply(snapshot.Chunk(i));
                    }
                }
                Assert.Equal(world.StateHash, replica.StateHash, "hashes");
                ThetaException e = Assert.Throws<ThetaException>(() => replica.Apply(new byte[] { 1, 2, 3 }), "garbage");
                Assert.Equal(Status.Malformed, e.Status, "status");
            }
        }
    }
}
