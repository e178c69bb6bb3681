// The Unity layer: thin, and not compiled on the machine that tests this package (it has
// no Unity); everything it calls is the Theta assembly, tested under Mono.
using System;
using System.Collections.Generic;
using UnityEngine;
using UnityEngine.LowLevel;

namespace Theta.Unity
{
    /// <summary>Receives one session event in place (its data lives until the next poll).</summary>
    public delegate void SessionEventHandler(ThetaSession source, SessionEvent e);

    /// <summary>
    /// Hosts or joins a Theta session, ticks it once a frame in the player loop (before
    /// LateUpdate), raises its events as C# events, and frees everything in OnDestroy, on
    /// application quit and before an assembly reload (the session closes in the
    /// background; quitting and reloading wait for the closes, bounded).
    /// </summary>
    [DisallowMultipleComponent]
    public sealed class ThetaSession : MonoBehaviour
    {
        public enum SessionRole
        {
            Host,
            Join,
        }

        [Tooltip("Host a session, or join one.")]
        public SessionRole Role = SessionRole.Host;

        [Tooltip("Host: the address to listen on, e.g. 0.0.0.0:7000.")]
        public string BindAddress = "0.0.0.0:7000";

        [Tooltip("Join: the host's address, e.g. 192.168.1.20:7000 or name:7000.")]
        public string HostAddress = "127.0.0.1:7000";

        [Tooltip("Join: the host certificate's SHA-256 fingerprint, 64 hex digits.")]
        public string FingerprintHex = "";

        [Tooltip("Join: the join token the host minted for this client.")]
        public string Token = "";

        [Tooltip("Host: interest management over cubic cells of this size in metres (about a client's view radius), each client getting only what it sees (see ThetaInterest); 0 sends everything to everyone.")]
        public float InterestCell = 0;

        [Tooltip("Join: after the connection timed out (the headset came off, the network changed), resume this many times in a row at most, once the app runs again; 0 never.")]
        public int ResumeAttempts = 3;

        /// <summary>
        /// Registers the application's component types, on the host's world and on the
        /// registry a client joins with (both sides must register the same types). Set it
        /// before the component is enabled.
        /// </summary>
        public Action<World> RegisterTypes;

        /// <summary>The session while enabled; null otherwise.</summary>
        public Session Session { get; private set; }

        public event Action<ushort> Joined;
        public event Action<ushort> PeerJoined;
        public event Action<ushort, string> PeerLeft;
        public event Action<DisconnectCause, string> Disconnected;
        /// <summary>Spawns, inserts, updates, removes and despawns (clients).</summary>
        public event SessionEventHandler ReplicaEvent;

        private static readonly List<ThetaSession> Active = new List<ThetaSession>();
        private readonly SessionEventBuffer events = new SessionEventBuffer(256);
        // The last disconnect timed out and no resume has started since.
        private bool resumePending;
        private bool paused;
        private int resumesLeft;

        private void OnEnable()
        {
            var world = new World();
            try
            {
                if (RegisterTypes != null)
                {
                    RegisterTypes(world);
                }
                if (Role == SessionRole.Host)
                {
                    Session = Session.Host(BindAddress, world, new SessionConfig { InterestCell = InterestCell });
                }
                else
                {
                    Session = Session.Join(HostAddress, Hex(FingerprintHex), Token, world);
                    world.Dispose();
                }
            }
            catch (Exception)
            {
                world.Dispose();
                throw;
            }
            Active.Add(this);
        }

        private void OnDisable()
        {
            Close();
        }

        private void OnApplicationPause(bool pause)
        {
            paused = pause;
            if (!pause && resumePending)
            {
                Resume();
            }
        }

        private void OnApplicationFocus(bool focus)
        {
            if (focus && !paused && resumePending)
            {
                Resume();
            }
        }

        /// <summary>
        /// Client: resumes after a Disconnected event with cause TimedOut (see
        /// <see cref="Theta.Session.Reconnect"/>); Joined or Disconnected follows. This
        /// component does it by itself when the app runs again (<see cref="ResumeAttempts"/>).
        /// </summary>
        public void Reconnect()
        {
            if (Session == null)
            {
                throw new InvalidOperationException("no session: enable this component first");
            }
            resumePending = false;
            Session.Reconnect();
        }

        private void Resume()
        {
            if (Session == null || resumesLeft <= 0)
            {
                return;
            }
            resumesLeft--;
            try
            {
                Reconnect();
            }
            catch (ThetaException e)
            {
                Debug.LogWarning("Theta: cannot resume: " + e.Message, this);
            }
        }

        private void OnDestroy()
        {
            Close();
            events.Dispose();
        }

        /// <summary>Closes the session (in the background) and stops ticking it.</summary>
        public void Close()
        {
            Active.Remove(this);
            if (Session != null)
            {
                Session.Dispose();
                Session = null;
            }
        }

        private void TickAndPoll()
        {
            Session.Tick();
            while (Session != null && Session.Poll(events) > 0)
            {
                for (int i = 0; i < events.Count; i++)
                {
                    Raise(events.At(i));
                }
            }
            // After the poll (its events borrow the session's bytes): running, resume now.
            if (resumePending && !paused)
            {
                Resume();
            }
        }

        private void Raise(SessionEvent e)
        {
            switch (e.Kind)
            {
                case SessionEventKind.Joined:
                    resumePending = false;
                    resumesLeft = ResumeAttempts;
                    Joined?.Invoke(e.Peer);
                    break;
                case SessionEventKind.PeerJoined:
                    PeerJoined?.Invoke(e.Peer);
                    break;
                case SessionEventKind.PeerLeft:
                    PeerLeft?.Invoke(e.Peer, e.Text);
                    break;
                case SessionEventKind.Disconnected:
                    // Timed out (paused, network change): resume once the app runs; Refused
                    // after a resume means the host's grace ended: join with a fresh token.
                    resumePending = Role == SessionRole.Join && e.Cause == DisconnectCause.TimedOut;
                    Disconnected?.Invoke(e.Cause, e.Text);
                    break;
                case SessionEventKind.WriteRejected:
                case SessionEventKind.JoinRefused:
                    Debug.LogWarning("Theta: " + e.Kind + ": " + e.Text, this);
                    break;
                default:
                    ReplicaEvent?.Invoke(this, e);
                    break;
            }
        }

        private static byte[] Hex(string hex)
        {
            if (hex == null || hex.Length != 2 * Session.FingerprintLength)
            {
                throw new ArgumentException("the fingerprint is " + (2 * Session.FingerprintLength) + " hex digits");
            }
            var bytes = new byte[Session.FingerprintLength];
            for (int i = 0; i < bytes.Length; i++)
            {
                bytes[i] = Convert.ToByte(hex.Substring(2 * i, 2), 16);
            }
            return bytes;
        }

        // ---- player loop, quitting, reloading -------------------------------------------

        /// <summary>Marks the system this layer inserts into the player loop.</summary>
        private struct ThetaTick
        {
        }

        [RuntimeInitializeOnLoadMethod(RuntimeInitializeLoadType.SubsystemRegistration)]
        private static void Install()
        {
            PlayerLoopSystem loop = PlayerLoop.GetCurrentPlayerLoop();
            for (int i = 0; i < loop.subSystemList.Length; i++)
            {
                if (loop.subSystemList[i].type != typeof(UnityEngine.PlayerLoop.PreLateUpdate))
                {
                    continue;
                }
                var systems = new List<PlayerLoopSystem>(loop.subSystemList[i].subSystemList);
                systems.RemoveAll(s => s.type == typeof(ThetaTick));
                systems.Insert(0, new PlayerLoopSystem { type = typeof(ThetaTick), updateDelegate = TickAll });
                loop.subSystemList[i].subSystemList = systems.ToArray();
            }
            PlayerLoop.SetPlayerLoop(loop);
            Application.quitting -= Shutdown;
            Application.quitting += Shutdown;
#if UNITY_EDITOR
            UnityEditor.AssemblyReloadEvents.beforeAssemblyReload -= Shutdown;
            UnityEditor.AssemblyReloadEvents.beforeAssemblyReload += Shutdown;
#endif
        }

        private static void TickAll()
        {
            // A copy: a handler may close a session.
            foreach (ThetaSession session in Active.ToArray())
            {
                if (session != null && session.Session != null)
                {
                    session.TickAndPoll();
                }
            }
        }

        /// <summary>
        /// Before quitting or a script reload: closes every session, removes the log
        /// callback (its code is about to go), and waits (at most 2 s) until no thread the
        /// library started for them runs.
        /// </summary>
        private static void Shutdown()
        {
            foreach (ThetaSession session in Active.ToArray())
            {
                if (session != null)
                {
                    session.Close();
                }
            }
            Active.Clear();
            ThetaLog.Detach();
            int pending = Session.WaitClosed(TimeSpan.FromSeconds(2));
            if (pending != 0)
            {
                Debug.LogWarning("Theta: " + pending + " sessions still closing after 2 s");
            }
        }
    }
}
