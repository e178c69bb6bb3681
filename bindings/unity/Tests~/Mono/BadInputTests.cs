using System;

namespace Theta.Tests
{
    /// <summary>A reference-holding struct: not a component value.</summary>
    public struct WithReference
    {
        public string Text;
    }

    public static class BadInputTests
    {
        [Test]
        public static void DisposedObjectsThrowObjectDisposed()
        {
            Types t;
            var world = Types.NewWorld(out t);
            world.Dispose();
            world.Dispose();
            var e = Assert.Throws<ObjectDisposedException>(() => world.Spawn(), "a disposed world");
            Assert.True(e.Message.Contains("disposed"), e.Message);

            var buffer = new SessionEventBuffer(4);
            buffer.Dispose();
            using (var loop = new Loopback(0))
            {
                Assert.Throws<ObjectDisposedException>(() => loop.Host.Poll(buffer), "a disposed event buffer");
            }
            var session = Session.Host("127.0.0.1:0", Types.NewWorld(out t));
            session.Dispose();
            Assert.Throws<ObjectDisposedException>(() => session.Set(new Entity(1), t.Transform, new Transform(1)), "a disposed session");
            Assert.Throws<ObjectDisposedException>(() => session.StateHash.ToString(), "a disposed session's hash");
        }

        [Test]
        public static void AWorldMovedIntoASessionIsNoLongerUsable()
        {
            Types t;
            World world = Types.NewWorld(out t);
            using (Session host = Session.Host("127.0.0.1:0", world))
            {
                var e = Assert.Throws<ObjectDisposedException>(() => world.Spawn(), "the moved world");
                Assert.True(e.Message.Contains("moved into a Session"), e.Message);
                host.Spawn();
            }
            // A failed host leaves the world the caller's.
            World kept = Types.NewWorld(out t);
            Assert.Throws<ThetaException>(() => Session.Host("not an address", kept), "a bad bind address");
            kept.Spawn();
            kept.Dispose();
        }

        [Test]
        public static void WrongSizesNullsAndBadArgumentsThrowArgumentExceptions()
        {
            using (var loop = new Loopback(0))
            {
                Session host = loop.Host;
                Types t = loop.Types;
                Entity e = host.Spawn();
                var wrong = Assert.Throws<ArgumentException>(() => host.Set(e, t.Transform, new byte[27]), "27 bytes for a 28-byte type");
                Assert.True(wrong.Message.Contains("exactly 28 bytes, not 27"), wrong.Message);
                Assert.Throws<ArgumentException>(() => host.Set(e, t.Name, new byte[33]), "33 bytes for a name of at most 32");
                Assert.Throws<ArgumentException>(() => host.Set(e, t.Transform, new Vector3f()), "a 12-byte struct for a 28-byte type");
                Assert.Throws<ArgumentException>(() => host.Set(e, t.Name, new WithReference()), "a struct holding a reference");
                Assert.Throws<ArgumentNullException>(() => host.SetBatch<Transform>(t.Transform, null, new Transform[0]), "null entities");
                Assert.Throws<ArgumentNullException>(() => host.SetBatch<Transform>(t.Transform, new Entity[0], null), "null values");
                Assert.Throws<ArgumentException>(() => host.SetBatch(t.Transform, new[] { e, e }, new Transform[1]), "2 entities, 1 value");
                Assert.Throws<ArgumentException>(() => host.SetBatch(t.Name, new[] { e }, new Transform[1]), "a batch of a variable type");
                Assert.Throws<ArgumentException>(() => host.SetBatch(t.Transform, new[] { e }, new Vector3f[1]), "values of the wrong size");
                Assert.Throws<ArgumentException>(() => host.Set(e, default(ComponentType), new Transform()), "component 0");
                Assert.Throws<ArgumentNullException>(() => Session.Host(null, new World()), "a null address");
                Assert.Throws<ArgumentNullException>(() => Session.Join("127.0.0.1:1", null, "t", new World()), "a null fingerprint");
                Assert.Throws<ArgumentException>(() => Session.Join("127.0.0.1:1", new byte[5], "t", new World()), "a short fingerprint");
                Assert.Throws<ArgumentNullException>(() => host.Poll(null), "a null buffer");
                Assert.Throws<ArgumentOutOfRangeException>(() => host.MintToken(1, TimeSpan.Zero), "a token valid 0 s");
                Assert.Throws<ArgumentOutOfRangeException>(() => new SessionEventBuffer(0), "an empty buffer");
                Assert.Throws<ArgumentOutOfRangeException>(() => host.PushPose(Device.Tracker7 + 1, new XrPose(), 0), "no such device");
                Assert.Throws<ArgumentOutOfRangeException>(() => loop.Buffer.At(loop.Buffer.Count).Kind.ToString(), "past the last event");
                Assert.Throws<ArgumentOutOfRangeException>(() => Session.Host("127.0.0.1:0", new World(), new SessionConfig { IdleTimeout = TimeSpan.FromSeconds(-1) }), "a negative timeout");
            }
        }

        [Test]
        public static void FailuresInsideTheLibraryThrowWithItsMessageAndStatus()
        {
            using (var loop = new Loopback(1))
            {
                Session host = loop.Host;
                Entity e = host.Spawn();
                host.Despawn(e);
                var stale = Assert.Throws<ThetaException>(() => host.Set(e, loop.Types.Transform, new Transform(1)), "a despawned entity");
                Assert.Equal(Status.DeadEntity, stale.Status, "status");
                Assert.True(stale.Message.StartsWith("theta_session_set: "), stale.Message);
                Entity hosts = host.Spawn();
                host.Set(hosts, loop.Types.Transform, new Transform(1));
                loop.TickUntil("convergence", loop.Converged);
                var owner = Assert.Throws<ThetaException>(() => loop.Clients[0].SetBatch(loop.Types.Transform, new[] { hosts }, new[] { new Transform(2) }), "the host's entity");
                Assert.Equal(Status.NotOwner, owner.Status, "status");
                var unknown = Assert.Throws<ThetaException>(() => host.Set(hosts, ComponentType.FromId(12345), new byte[4]), "an unknown component");
                Assert.Equal(Status.UnknownComponent, unknown.Status, "status");
                var config = new SessionConfig { DatagramLevel = 99 };
                var level = Assert.Throws<ThetaException>(() => Session.Host("127.0.0.1:0", new World(), config), "a zstd level of 99");
                Assert.Equal(Status.InvalidArgument, level.Status, "status");
                Assert.True(level.Message.Contains("outside zstd's range"), level.Message);
            }
        }
    }
}
