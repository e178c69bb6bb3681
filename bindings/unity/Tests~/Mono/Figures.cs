using System;
using System.Diagnostics;

namespace Theta.Tests
{
    /// <summary>
    /// The figures of issue 14, printed after the tests with --figures: the cost of a value
    /// written from C# (single and batch) beside the same calls from C (the program named by
    /// THETA_C_BENCH, run in the same process tree), and managed allocations per frame.
    /// </summary>
    public static class Figures
    {
        public const int Entities = 10000;
        public const int Rounds = 50;

        public static void Print()
        {
            Console.WriteLine("== figures (" + Entities + " entities of a 28-byte component, every value changed each round; the fastest of " + Rounds + " rounds, as other work on the machine only slows a round)");
            double single, batch;
            Measure(out single, out batch);
            Console.WriteLine(string.Format("C#: single set {0,7:F1} ns/value   batch set {1,6:F1} ns/value", single, batch));
            string bench = Environment.GetEnvironmentVariable("THETA_C_BENCH");
            if (bench != null)
            {
                var start = new ProcessStartInfo(bench, Entities + " " + Rounds) { UseShellExecute = false, RedirectStandardOutput = true };
                using (Process c = Process.Start(start))
                {
                    Console.Write(c.StandardOutput.ReadToEnd());
                    c.WaitForExit();
                }
            }
            long memory;
            double perFrame = AllocationTests.BytesPerFrame(1000, out memory);
            Console.WriteLine(string.Format("managed allocations: {0:F1} bytes/frame over 1000 frames of tick + set + batch set + poll (host and client); GC.GetTotalMemory grew {1} bytes", perFrame, memory));
        }

        private static void Measure(out double singleNs, out double batchNs)
        {
            Types t;
            using (Session host = Session.Host("127.0.0.1:0", Types.NewWorld(out t)))
            {
                var entities = new Entity[Entities];
                var values = new Transform[Entities];
                for (int i = 0; i < Entities; i++)
                {
                    entities[i] = host.Spawn();
                }
                host.SetBatch(t.Transform, entities, values);
                var watch = new Stopwatch();
                double fastest = double.MaxValue;
                for (int round = 1; round <= Rounds; round++)
                {
                    var value = new Transform(round);
                    watch.Restart();
                    for (int i = 0; i < Entities; i++)
                    {
                        host.Set(entities[i], t.Transform, value);
                    }
                    fastest = Math.Min(fastest, watch.Elapsed.TotalMilliseconds);
                }
                singleNs = fastest * 1e6 / Entities;
                fastest = double.MaxValue;
                for (int round = 1; round <= Rounds; round++)
                {
                    for (int i = 0; i < Entities; i++)
                    {
                        values[i].Position.X = -round;
                    }
                    watch.Restart();
                    host.SetBatch(t.Transform, entities, values);
                    fastest = Math.Min(fastest, watch.Elapsed.TotalMilliseconds);
                }
                batchNs = fastest * 1e6 / Entities;
            }
        }
    }
}
