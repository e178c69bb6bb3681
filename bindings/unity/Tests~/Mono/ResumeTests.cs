using System;
using System.Threading;

namespace Theta.Tests
{
    /// <summary>Session.Reconnect: its misuse, and a client redialling its host over QUIC.</summary>
    public static class ResumeTests
    {
        [Test]
        public static void ReconnectMisuseThrowsWithItsStatus()
        {
            using (var loop = new Loopback(1))
            {
                var host = Assert.Throws<ThetaException>(() => loop.Host.Reconnect(), "a host");
                Assert.Equal(Status.WrongRole, host.Status, "status");
                Assert.True(host.Message.StartsWith("theta_session_reconnect: "), host.Message);
                var connected = Assert.Throws<ThetaException>(() => loop.Clients[0].Reconnect(), "a connected client");
                Assert.Equal(Status.CannotResume, connected.Status, "status");
                Assert.True(connected.Message.Contains("still up"), connected.Message);
            }
            Types t;
            using (World world = Types.NewWorld(out t))
            using (World registry = Types.NewWorld(out t))
            {
                Session host = Session.Host("127.0.0.1:0", world);
                // A client refused at once (a malformed token) was never admitted.
                Session client = Session.Join("127.0.0.1:" + host.LocalPort, host.Fingerprint(),
                    "not-a-token", registry);
                var buffer = new SessionEventBuffer(16);
                try
                {
                    WaitFor(client, buffer, SessionEventKind.Disconnected, host);
                    var never = Assert.Throws<ThetaException>(() => client.Reconnect(), "a client never admitted");
                    Assert.Equal(Status.CannotResume, never.Status, "status");
                    Assert.True(never.Message.Contains("never admitted"), never.Message);
                }
                finally
                {
                    client.Dispose();
                    host.Dispose();
                    buffer.Dispose();
                }
                Assert.Throws<ObjectDisposedException>(() => client.Reconnect(), "a disposed session");
            }
        }

        [Test]
        public static void ReconnectRedialsTheHostAndReportsTheOutcome()
        {
            Types t;
            using (World world = Types.NewWorld(out t))
            using (World registry = Types.NewWorld(out t))
            using (var buffer = new SessionEventBuffer(16))
            {
                Session host = Session.Host("127.0.0.1:0", world);
                var quick = new SessionConfig
                {
                    ConnectTimeout = TimeSpan.FromMilliseconds(500),
                    IdleTimeout = TimeSpan.FromSeconds(1),
                    KeepAlive = TimeSpan.FromMilliseconds(200),
                };
                using (Session client = Session.Join("127.0.0.1:" + host.LocalPort, host.Fingerprint(),
                    host.MintToken(1, TimeSpan.FromMinutes(1)), registry, quick))
                {
                    WaitFor(client, buffer, SessionEventKind.Joined, host);
                    // The host goes: the client hears it, then dials again on Reconnect.
                    host.Dispose();
                    WaitFor(client, buffer, SessionEventKind.Disconnected, null);
                    client.Reconnect();
                    var again = Assert.Throws<ThetaException>(() => client.Reconnect(), "a second reconnect while dialling");
                    Assert.Equal(Status.CannotResume, again.Status, "status");
                    // Nobody answers at the address: the redial ends in a Disconnected event.
                    DisconnectCause cause = WaitFor(client, buffer, SessionEventKind.Disconnected, null);
                    Assert.True(cause == DisconnectCause.Unreachable || cause == DisconnectCause.TimedOut,
                        "nobody answered: " + cause);
                    // Ended: it may try again.
                    client.Reconnect();
                }
            }
        }

        /// <summary>
        /// Ticks <paramref name="client"/> (and <paramref name="host"/>, if any) until an event of
        /// <paramref name="kind"/>; returns its cause.
        /// </summary>
        private static DisconnectCause WaitFor(Session client, SessionEventBuffer buffer, SessionEventKind kind, Session host)
        {
            DateTime deadline = DateTime.UtcNow + Loopback.Wait;
            while (DateTime.UtcNow < deadline)
            {
                if (host != null)
                {
                    host.Tick();
                    while (host.Poll(buffer) > 0)
                    {
                    }
                }
                client.Tick();
                while (client.Poll(buffer) > 0)
                {
                    for (int i = 0; i < buffer.Count; i++)
                    {
                        SessionEvent e = buffer.At(i);
                        if (e.Kind == kind)
                        {
                            return e.Cause;
                        }
                    }
                }
                Thread.Sleep(2);
            }
            throw new Exception("no " + kind + " within " + Loopback.Wait);
        }
    }
}
