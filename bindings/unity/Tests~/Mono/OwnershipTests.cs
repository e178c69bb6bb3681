using System;
using System.Linq;

namespace Theta.Tests
{
    /// <summary>Ownership through the C# layer: a grab, a denial, a release, the host's hook, and misuse.</summary>
    public static class OwnershipTests
    {
        /// <summary>Whether every session (host first) saw OwnershipChanged of <paramref name="entity"/> naming <paramref name="owner"/>.</summary>
        private sealed class Changes
        {
            public readonly bool[] Seen;
            private readonly Entity entity;
            private readonly ushort owner;

            public Changes(Loopback loop, Entity entity, ushort owner)
            {
                Seen = new bool[loop.Clients.Count + 1];
                this.entity = entity;
                this.owner = owner;
            }

            public void On(int session, SessionEvent e)
            {
                if (e.Kind == SessionEventKind.OwnershipChanged && e.Entity == entity && e.Component == 0 && e.Peer == owner)
                {
                    Seen[session] = true;
                }
            }

            public bool All() => Seen.All(s => s);
        }

        [Test]
        public static void AClientGrabsAFreedHostObjectWritesItAndLetsGoWhileTheOtherIsDenied()
        {
            using (var loop = new Loopback(2))
            {
                Session host = loop.Host, alice = loop.Clients[0], bob = loop.Clients[1];
                Types t = loop.Types;
                Entity ball = host.Spawn();
                host.Set(ball, t.Transform, new Transform(1));
                Assert.Equal((ushort?)0, host.OwnerOf(ball), "the creator owns it");
                host.SetOwner(ball, null);
                Assert.Equal((ushort?)null, host.OwnerOf(ball), "the host set it free");
                loop.TickUntil("the free ball everywhere", () => loop.Converged() && loop.Clients.All(c => c.OwnerOf(ball) == null));

                var granted = new Changes(loop, ball, 1);
                alice.RequestOwnership(ball);
                loop.TickUntil("the grant on every peer", granted.All, granted.On);
                Assert.Equal((ushort?)1, bob.OwnerOf(ball, t.Transform), "a component follows its entity");

                var refusal = (OwnershipRefusal)255;
                string reason = null;
                bob.RequestOwnership(ball);
                loop.TickUntil("the denial", () => reason != null, (index, e) =>
                {
                    if (index == 2 && e.Kind == SessionEventKind.OwnershipDenied && e.Entity == ball)
                    {
                        refusal = e.Refusal;
                        reason = e.Text;
                    }
                });
                Assert.Equal(OwnershipRefusal.Held, refusal, "Alice holds it");
                Assert.True(reason.Contains("held by peer 1"), reason);

                var notOwner = Assert.Throws<ThetaException>(() => bob.Set(ball, t.Transform, new Transform(3)), "Bob's write");
                Assert.Equal(Status.NotOwner, notOwner.Status, "status");
                alice.Set(ball, t.Transform, new Transform(9));
                alice.ReleaseOwnership(ball);
                var released = new Changes(loop, ball, Session.Nobody);
                loop.TickUntil("the release on every peer", () => released.All() && loop.Converged(), released.On);
                foreach (Session s in loop.All)
                {
                    Assert.Equal((ushort?)null, s.OwnerOf(ball), "nobody owns it");
                    Assert.Equal(9f, s.Get<Transform>(ball, t.Transform).Position.X, "the last write was kept");
                }
            }
        }

        [Test]
        public static void TheHookLetsTheHostEngineRefuseWithAReasonAndAccept()
        {
            var config = new SessionConfig { OwnershipHook = TimeSpan.FromSeconds(10), OwnershipLease = TimeSpan.FromSeconds(8) };
            using (var loop = new Loopback(1, "127.0.0.1", config))
            {
                Session host = loop.Host, alice = loop.Clients[0];
                Entity cup = host.Spawn();
                host.Set(cup, loop.Types.Transform, new Transform(1));
                host.SetOwner(cup, null);
                loop.TickUntil("the free cup", () => loop.Converged() && alice.OwnerOf(cup) == null);

                for (int attempt = 0; attempt < 2; attempt++)
                {
                    ulong request = 0;
                    ushort asker = 0;
                    alice.RequestOwnership(cup);
                    loop.TickUntil("the request to the engine", () => request != 0, (index, e) =>
                    {
                        if (index == 0 && e.Kind == SessionEventKind.OwnershipRequested && e.Entity == cup)
                        {
                            request = e.Request;
                            asker = e.Peer;
                        }
                    });
                    Assert.Equal((ushort)1, asker, "Alice asked");
                    if (attempt == 0)
                    {
                        host.DecideOwnership(request, false, "not in this level");
                        string reason = null;
                        var refusal = (OwnershipRefusal)255;
                        loop.TickUntil("the refusal", () => reason != null, (index, e) =>
                        {
                            if (index == 1 && e.Kind == SessionEventKind.OwnershipDenied)
                            {
                                reason = e.Text;
                                refusal = e.Refusal;
                            }
                        });
                        Assert.Equal(OwnershipRefusal.Refused, refusal, "refused by the engine");
                        Assert.Equal("not in this level", reason, "its reason");
                        Assert.Equal((ushort?)null, host.OwnerOf(cup), "still free");
                    }
                    else
                    {
                        host.DecideOwnership(request, true);
                        var granted = new Changes(loop, cup, 1);
                        loop.TickUntil("the grant", granted.All, granted.On);
                    }
                    var answered = Assert.Throws<ThetaException>(() => host.DecideOwnership(request, true), "an answered request");
                    Assert.Equal(Status.NotFound, answered.Status, "status");
                }
            }
        }

        [Test]
        public static void OwnershipMisuseThrowsWithItsStatus()
        {
            using (var loop = new Loopback(1))
            {
                Session host = loop.Host, alice = loop.Clients[0];
                Entity ball = host.Spawn();
                host.Set(ball, loop.Types.Transform, new Transform(1));
                loop.TickUntil("the ball", loop.Converged);
                Action<Action, Status, string> expect = (call, status, what) =>
                {
                    var e = Assert.Throws<ThetaException>(call, what);
                    Assert.Equal(status, e.Status, what);
                };
                // Wrong roles.
                expect(() => host.RequestOwnership(ball), Status.WrongRole, "a host's request");
                expect(() => alice.SetOwner(ball, 1), Status.WrongRole, "a client's assignment");
                expect(() => alice.DecideOwnership(1, true), Status.WrongRole, "a client's answer");
                // Not the owner.
                expect(() => alice.ReleaseOwnership(ball), Status.NotOwner, "a client's release of the host's entity");
                expect(() => alice.SetOwnershipPolicy(ball, OwnershipPolicy.Takeover), Status.NotOwner, "a client's policy of it");
                // Unknown things.
                var ghost = new Entity(ball.Id + 1000);
                expect(() => host.OwnerOf(ghost), Status.DeadEntity, "an unknown entity");
                expect(() => alice.RequestOwnership(ghost), Status.DeadEntity, "a request of an unknown entity");
                expect(() => host.SetOwner(ball, ComponentType.FromId(0xBAD), null), Status.UnknownComponent, "an unregistered component");
                expect(() => host.DecideOwnership(999, true), Status.NotFound, "an unknown request");
                // Bad values.
                expect(() => host.SetOwner(ball, 9), Status.InvalidArgument, "a peer not connected");
                expect(() => host.SetOwnershipPolicy(ball, (OwnershipPolicy)7), Status.InvalidArgument, "an unknown policy");
                expect(() => host.SetOwnershipPolicy(ball, OwnershipPolicy.HostOnly, (OwnershipFlags)0x80), Status.InvalidArgument, "a host-only flag");
                Assert.Throws<ArgumentException>(() => host.DecideOwnership(1, false, new string('x', Session.MaxOwnershipReasonBytes + 1)), "a reason too long");
                Assert.Throws<ArgumentOutOfRangeException>(() => host.SetOwner(ball, Session.Nobody), "Nobody as a peer id");
                // None of it changed anything.
                Assert.Equal((ushort?)0, host.OwnerOf(ball), "the host still owns its entity");
                host.SetOwnershipPolicy(ball, OwnershipPolicy.HostOnly, OwnershipFlags.DespawnWithOwner);

                // A client not joined yet.
                using (World registry = Types.NewWorld(out _))
                using (Session late = Session.Join("127.0.0.1:" + host.LocalPort, host.Fingerprint(),
                    host.MintToken(2, TimeSpan.FromMinutes(1)), registry))
                {
                    expect(() => late.RequestOwnership(ball), Status.NotConnected, "a client not joined");
                    expect(() => late.OwnerOf(ball), Status.NotConnected, "its query");
                }
                // A disposed session.
                Session gone = loop.Clients[0];
                loop.Clients.RemoveAt(0);
                loop.Seen.RemoveAt(1);
                gone.Dispose();
                Assert.Throws<ObjectDisposedException>(() => gone.OwnerOf(ball), "a disposed session");
            }
        }
    }
}
