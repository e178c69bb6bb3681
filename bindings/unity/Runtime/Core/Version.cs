using Theta.Interop;

namespace Theta
{
    /// <summary>Versions of the loaded native library and of this layer.</summary>
    public static class Version
    {
        /// <summary>The native library's version, e.g. "0.1.0".</summary>
        public static string Library
        {
            get
            {
                Theta.Library.EnsureCompatible();
                return Theta.Library.Version();
            }
        }

        /// <summary>The C ABI this layer was generated for (equal to the library's, or nothing runs).</summary>
        public static uint Abi => NativeMethods.THETA_ABI_VERSION;
    }
}
