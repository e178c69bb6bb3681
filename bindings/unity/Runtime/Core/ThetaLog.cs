using System;
using System.Threading;
using Theta.Interop;

namespace Theta
{
    /// <summary>
    /// The library's log, raised as a C# event. The native callback is one static method,
    /// marked for IL2CPP and registered once (the same delegate, kept alive here), never a
    /// delegate marshalled per call. It runs on whichever thread logs (network threads
    /// included): handlers must be fast and thread-safe.
    ///
    /// Before the domain holding the callback unloads (a Unity script reload, a play-mode
    /// exit with domain reload, or AppDomain.Unload), the callback is removed
    /// (<see cref="Detach"/>, hooked to AppDomain.DomainUnload), and the library waits for
    /// calls running on other threads: it never calls into an unloaded domain.
    /// </summary>
    public static unsafe class ThetaLog
    {
        private static readonly object Gate = new object();
        private static readonly NativeMethods.theta_set_log_callback_callback_delegate Callback = OnNativeLog;
        private static Action<LogLevel, string> handlers;
        private static bool attached;
        private static bool unloadHooked;

        /// <summary>Log messages: the level and the text. Subscribing attaches the callback.</summary>
        public static event Action<LogLevel, string> Message
        {
            add
            {
                lock (Gate)
                {
                    handlers += value;
                    Attach();
                }
            }
            remove
            {
                lock (Gate)
                {
                    handlers -= value;
                    if (handlers == null)
                    {
                        Detach();
                    }
                }
            }
        }

        /// <summary>The most verbose level passed on (default Warn); Off silences logging.</summary>
        public static void SetLevel(LogLevel level)
        {
            if (level > LogLevel.Debug)
            {
                throw new ArgumentOutOfRangeException(nameof(level), "not a LogLevel");
            }
            Library.EnsureCompatible();
            Library.Check(NativeMethods.theta_set_log_level((byte)level));
        }

        private static void Attach()
        {
            if (attached)
            {
                return;
            }
            Library.EnsureCompatible();
            if (!unloadHooked)
            {
                AppDomain.CurrentDomain.DomainUnload += (sender, args) => Detach();
                unloadHooked = true;
            }
            Library.Check(NativeMethods.theta_set_log_callback(Callback, null));
            attached = true;
        }

        /// <summary>
        /// Removes the native callback of this domain; returns once no thread runs it any
        /// more. Called on AppDomain.DomainUnload, and by the Unity layer before an assembly
        /// reload; subscribing again attaches it again.
        /// </summary>
        public static void Detach()
        {
            lock (Gate)
            {
                if (!attached)
                {
                    return;
                }
                NativeMethods.theta_set_log_callback(null, null);
                attached = false;
            }
        }

        [AOT.MonoPInvokeCallback(typeof(NativeMethods.theta_set_log_callback_callback_delegate))]
        private static void OnNativeLog(void* userData, byte level, byte* message, UIntPtr length)
        {
            // Nothing may escape into native code: an exception here would tear the process.
            try
            {
                Action<LogLevel, string> current = Volatile.Read(ref handlers);
                if (current == null)
                {
                    return;
                }
                string text = System.Text.Encoding.UTF8.GetString(message, (int)length);
                current((LogLevel)level, text);
            }
            catch (Exception)
            {
                // A failing handler loses its message, nothing more.
            }
        }
    }
}
