// A minimal test runner for plain Mono (no NUnit on this machine): every public static
// method marked [Test] runs once; the last line is "N passed, N failed". Figures follow
// the tests when asked for with --figures.
using System;
using System.Linq;
using System.Reflection;

namespace Theta.Tests
{
    [AttributeUsage(AttributeTargets.Method)]
    public sealed class TestAttribute : Attribute
    {
    }

    public static class Assert
    {
        public static void True(bool condition, string what)
        {
            if (!condition)
            {
                throw new Exception("expected: " + what);
            }
        }

        public static void Equal<T>(T expected, T actual, string what)
        {
            if (!Equals(expected, actual))
            {
                throw new Exception(what + ": expected " + expected + ", got " + actual);
            }
        }

        /// <summary>Runs <paramref name="action"/> and returns the exception of type E it must throw.</summary>
        public static E Throws<E>(Action action, string what) where E : Exception
        {
            try
            {
                action();
            }
            catch (E e)
            {
                return e;
            }
            catch (Exception e)
            {
                throw new Exception(what + ": expected " + typeof(E).Name + ", got " + e.GetType().Name + ": " + e.Message);
            }
            throw new Exception(what + ": expected " + typeof(E).Name + ", nothing was thrown");
        }
    }

    public static class Runner
    {
        public static int Main(string[] args)
        {
            Console.WriteLine("theta_net " + Theta.Version.Library + " (C ABI " + Theta.Version.Abi + "), Mono " + Environment.Version);
            string filter = args.FirstOrDefault(a => !a.StartsWith("--"));
            var tests = typeof(Runner).Assembly.GetTypes()
                .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static))
                .Where(m => m.GetCustomAttributes(typeof(TestAttribute), false).Length > 0)
                .Where(m => filter == null || m.Name.Contains(filter))
                .OrderBy(m => m.DeclaringType.Name + "." + m.Name)
                .ToList();
            int passed = 0, failed = 0;
            foreach (MethodInfo test in tests)
            {
                string name = test.DeclaringType.Name + "." + test.Name;
                var watch = System.Diagnostics.Stopwatch.StartNew();
                try
                {
                    test.Invoke(null, null);
                    passed++;
                    Console.WriteLine("ok   " + name + " (" + watch.ElapsedMilliseconds + " ms)");
                }
                catch (TargetInvocationException e)
                {
                    failed++;
                    Console.WriteLine("FAIL " + name + ": " + e.InnerException);
                }
            }
            if (args.Contains("--figures"))
            {
                Figures.Print();
            }
            int pending = Session.WaitClosed(TimeSpan.FromSeconds(10));
            if (pending != 0)
            {
                failed++;
                Console.WriteLine("FAIL " + pending + " sessions still closing 10 s after the tests");
            }
            Console.WriteLine(passed + " passed, " + failed + " failed");
            return failed == 0 ? 0 : 1;
        }
    }
}
