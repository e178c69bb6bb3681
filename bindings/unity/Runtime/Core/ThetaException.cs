using System;
using Theta.Interop;

namespace Theta
{
    /// <summary>Result of a native call, as the C ABI's ThetaStatus.</summary>
    public enum Status : uint
    {
        Ok = 0,
        NullPointer = 1,
        InvalidHandle = 2,
        InvalidArgument = 3,
        UnknownComponent = 4,
        WrongSize = 5,
        DeadEntity = 6,
        RegistryConflict = 7,
        Malformed = 8,
        HistoryTruncated = 9,
        BufferTooSmall = 10,
        OutOfIds = 11,
        NotFound = 12,
        NotOwner = 13,
        NotConnected = 14,
        Io = 15,
        Tls = 16,
        WrongRole = 17,
        CannotResume = 18,
        TrainingRefused = 19,
        WrongTransport = 20,
        UnknownConnection = 21,
        ConnectionExists = 22,
        MessageTooLarge = 23,
        SessionClosed = 24,
        InterestOff = 25,
        NotQuantisable = 26,
        Panic = 99,
    }

    /// <summary>
    /// A native call failed: <see cref="Status"/> says how, the message is the library's
    /// (theta_last_error) for that call.
    /// </summary>
    public sealed class ThetaException : Exception
    {
        public ThetaException(Status status, string message) : base(message)
        {
            Status = status;
        }

        /// <summary>The status the native call returned.</summary>
        public Status Status { get; }
    }

    /// <summary>The loaded native library: ABI check, status checks, error messages.</summary>
    internal static unsafe class Library
    {
        private static volatile bool checkedAbi;

        /// <summary>
        /// Refuses to run against a native library of another ABI; checked on first use by
        /// every object's constructor.
        /// </summary>
        internal static void EnsureCompatible()
        {
            if (checkedAbi)
            {
                return;
            }
            uint loaded = NativeMethods.theta_abi_version();
            if (loaded != NativeMethods.THETA_ABI_VERSION)
            {
                throw new InvalidOperationException(
                    "the native theta_net library speaks C ABI " + loaded + ", this C# layer ABI "
                    + NativeMethods.THETA_ABI_VERSION + ": use the library built with this package");
            }
            checkedAbi = true;
        }

        /// <summary>The version of the loaded native library, e.g. "0.1.0".</summary>
        internal static string Version()
        {
            byte* text = NativeMethods.theta_version();
            int length = 0;
            while (text[length] != 0)
            {
                length++;
            }
            return System.Text.Encoding.UTF8.GetString(text, length);
        }

        /// <summary>Throws a <see cref="ThetaException"/> unless the call succeeded.</summary>
        internal static void Check(ThetaStatus status)
        {
            if (status != ThetaStatus.Ok)
            {
                throw new ThetaException((Status)status, LastError());
            }
        }

        /// <summary>The message of the last failed call on this thread.</summary>
        internal static string LastError()
        {
            UIntPtr length;
            if (NativeMethods.theta_last_error(null, UIntPtr.Zero, &length) != ThetaStatus.Ok)
            {
                return "unknown error";
            }
            var buffer = new byte[(int)length + 1];
            fixed (byte* p = buffer)
            {
                NativeMethods.theta_last_error(p, (UIntPtr)buffer.Length, &length);
            }
            return System.Text.Encoding.UTF8.GetString(buffer, 0, (int)length);
        }

        /// <summary>UTF-8 bytes of a string argument, refusing null.</summary>
        internal static byte[] Utf8(string text, string parameter)
        {
            if (text == null)
            {
                throw new ArgumentNullException(parameter);
            }
            return System.Text.Encoding.UTF8.GetBytes(text);
        }
    }
}
