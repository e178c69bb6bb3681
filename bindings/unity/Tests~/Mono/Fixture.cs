using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;

namespace Theta.Tests
{
    /// <summary>A transform as an engine stores it: 28 bytes, no references.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Transform
    {
        public Vector3f Position;
        public Quaternionf Rotation;

        public Transform(float x)
        {
            Position = new Vector3f(x, 1, 2);
            Rotation = Quaternionf.Identity;
        }
    }

    /// <summary>The component types every peer of the tests registers.</summary>
    public sealed class Types
    {
        public ComponentType Transform;
        public ComponentType Name;

        public static World NewWorld(out Types types, ushort localPeer = 0)
        {
            var world = new World(localPeer);
            types = new Types
            {
                Transform = world.RegisterFixed<Transform>("test.Transform"),
                Name = world.RegisterVariable("test.Name", 32),
            };
            return world;
        }
    }

    /// <summary>A host and its clients over loopback QUIC, in this process.</summary>
    public sealed class Loopback : IDisposable
    {
        public static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

        public readonly Session Host;
        public readonly List<Session> Clients = new List<Session>();
        public readonly Types Types;
        public readonly SessionEventBuffer Buffer = new SessionEventBuffer(64);
        /// <summary>Whether <see cref="Seen"/> records (its lists grow: off to measure allocations).</summary>
        public bool Recording = true;
        /// <summary>Kinds of the events polled so far, per session (host first).</summary>
        public readonly List<List<SessionEventKind>> Seen = new List<List<SessionEventKind>>();

        /// <param name="prepare">Called on the host's world and the clients' registry after the types are registered (e.g. to declare fields).</param>
        public Loopback(int clients, string clientAddress = "127.0.0.1", SessionConfig hostConfig = null,
            Action<World, Types> prepare = null)
        {
            World world = Types.NewWorld(out Types);
            prepare?.Invoke(world, Types);
            Host = Session.Host("127.0.0.1:0", world, hostConfig);
            Seen.Add(new List<SessionEventKind>());
            byte[] fingerprint = Host.Fingerprint();
            using (World registry = Types.NewWorld(out Types registryTypes))
            {
                prepare?.Invoke(registry, registryTypes);
                for (int i = 1; i <= clients; i++)
                {
                    string token = Host.MintToken((ushort)i, TimeSpan.FromMinutes(1));
                    Clients.Add(Session.Join(clientAddress + ":" + Host.LocalPort, fingerprint, token, registry));
                    Seen.Add(new List<SessionEventKind>());
                }
            }
            TickUntil("every client joined", () => Clients.TrueForAll(c => c.Peer.HasValue));
        }

        public IEnumerable<Session> All
        {
            get
            {
                yield return Host;
                foreach (Session c in Clients)
                {
                    yield return c;
                }
            }
        }

        /// <summary>Ticks and polls every session once; <paramref name="onEvent"/> sees each event.</summary>
        public void TickOnce(EventHandler onEvent = null)
        {
            // Indexed, not `All`: an iterator would allocate each frame.
            for (int index = 0; index <= Clients.Count; index++)
            {
                Session s = index == 0 ? Host : Clients[index - 1];
                s.Tick();
                while (s.Poll(Buffer) > 0)
                {
                    for (int i = 0; i < Buffer.Count; i++)
                    {
                        SessionEvent e = Buffer.At(i);
                        if (Recording)
                        {
                            Seen[index].Add(e.Kind);
                        }
                        if (onEvent != null)
                        {
                            onEvent(index, e);
                        }
                    }
                }
            }
        }

        public delegate void EventHandler(int session, SessionEvent e);

        /// <summary>Ticks until <paramref name="done"/> holds, at most <see cref="Wait"/>.</summary>
        public void TickUntil(string what, Func<bool> done, EventHandler onEvent = null)
        {
            DateTime deadline = DateTime.UtcNow + Wait;
            while (true)
            {
                TickOnce(onEvent);
                if (done())
                {
                    return;
                }
                if (DateTime.UtcNow > deadline)
                {
                    throw new Exception("no " + what + " within " + Wait);
                }
                Thread.Sleep(2);
            }
        }

        public bool Converged()
        {
            ulong hash = Host.StateHash;
            return Clients.TrueForAll(c => c.StateHash == hash);
        }

        public void Dispose()
        {
            foreach (Session s in All)
            {
                s.Dispose();
            }
            Buffer.Dispose();
        }
    }
}
