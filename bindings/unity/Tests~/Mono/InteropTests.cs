using System;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;

namespace Theta.Tests
{
    public static class InteropTests
    {
        private static Type Generated(string name)
        {
            Type type = typeof(Session).Assembly.GetType("Theta.Interop." + name);
            Assert.True(type != null, "generated type " + name);
            return type;
        }

        /// <summary>The public enums carry every value of the generated ones, under the same names.</summary>
        [Test]
        public static void PublicEnumsMatchTheGeneratedOnes()
        {
            var pairs = new[]
            {
                Tuple.Create(typeof(Status), "ThetaStatus"),
                Tuple.Create(typeof(SessionEventKind), "ThetaSessionEventKind"),
                Tuple.Create(typeof(DisconnectCause), "ThetaDisconnectCause"),
                Tuple.Create(typeof(Codec), "ThetaCodec"),
                Tuple.Create(typeof(Congestion), "ThetaCongestion"),
                Tuple.Create(typeof(LogLevel), "ThetaLogLevel"),
                Tuple.Create(typeof(Change), "ThetaChange"),
                Tuple.Create(typeof(OwnershipPolicy), "ThetaOwnershipPolicy"),
                Tuple.Create(typeof(OwnershipRefusal), "ThetaOwnershipRefusal"),
            };
            foreach (var pair in pairs)
            {
                Type generated = Generated(pair.Item2);
                foreach (string name in Enum.GetNames(generated))
                {
                    object value = Convert.ToUInt64(Enum.Parse(generated, name));
                    Assert.True(Enum.IsDefined(pair.Item1, Enum.ToObject(pair.Item1, value)), pair.Item1.Name + " lacks " + name + " = " + value);
                    Assert.Equal(name, Enum.GetName(pair.Item1, Enum.ToObject(pair.Item1, value)), pair.Item1.Name + " value " + value);
                }
            }
        }

        /// <summary>
        /// Every struct of the C ABI has the size and field offsets C gives it (the file of
        /// THETA_C_LAYOUT, printed by a C program compiled against theta.h).
        /// </summary>
        [Test]
        public static void GeneratedStructsHaveTheLayoutOfTheHeader()
        {
            string path = Environment.GetEnvironmentVariable("THETA_C_LAYOUT");
            Assert.True(path != null && File.Exists(path), "THETA_C_LAYOUT names the C layout file (scripts/test-unity.sh makes it)");
            int checkedFields = 0;
            foreach (string line in File.ReadAllLines(path).Where(l => l.Length > 0))
            {
                // "ThetaSessionConfig 64" or "ThetaSessionConfig.congestion 31"
                string[] parts = line.Split(' ');
                int expected = int.Parse(parts[1]);
                string[] names = parts[0].Split('.');
                Type type = Generated(names[0]);
                if (names.Length == 1)
                {
                    Assert.Equal(expected, Marshal.SizeOf(type), "sizeof " + names[0]);
                }
                else
                {
                    Assert.Equal(expected, (int)Marshal.OffsetOf(type, names[1]), "offsetof " + parts[0]);
                    checkedFields++;
                }
            }
            Assert.True(checkedFields > 100, checkedFields + " fields checked");
        }

        [Test]
        public static void TheLibraryIsTheAbiThisLayerWasGeneratedFor()
        {
            Assert.Equal(Theta.Version.Abi, (uint)typeof(Session).Assembly.GetType("Theta.Interop.NativeMethods")
                .GetMethod("theta_abi_version", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)
                .Invoke(null, null), "theta_abi_version()");
            Assert.True(Theta.Version.Library.StartsWith("0."), Theta.Version.Library);
        }
    }
}
