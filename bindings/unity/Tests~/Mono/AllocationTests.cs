using System;

namespace Theta.Tests
{
    public static class AllocationTests
    {
        /// <summary>
        /// Managed bytes allocated by this thread per frame of tick + single set + batch set
        /// + poll on a host and a client, after a warm-up (Mono's per-thread counter).
        /// </summary>
        public static double BytesPerFrame(int frames, out long totalMemoryDelta)
        {
            using (var loop = new Loopback(1))
            {
                Session host = loop.Host;
                loop.Recording = false;
                var entities = new Entity[100];
                var values = new Transform[100];
                for (int i = 0; i < entities.Length; i++)
                {
                    entities[i] = host.Spawn();
                }
                Action<int> frame = n =>
                {
                    for (int i = 0; i < values.Length; i++)
                    {
                        values[i].Position.X = n + i;
                    }
                    host.SetBatch(loop.Types.Transform, entities, values);
                    host.Set(entities[n % 100], loop.Types.Transform, new Transform(-n));
                    loop.TickOnce();
                };
                for (int n = 0; n < 100; n++)
                {
                    frame(n);
                }
                GC.Collect();
                long memory = GC.GetTotalMemory(false);
                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int n = 100; n < 100 + frames; n++)
                {
                    frame(n);
                }
                long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                totalMemoryDelta = GC.GetTotalMemory(false) - memory;
                return (double)allocated / frames;
            }
        }

        [Test]
        public static void ASteadyStateFrameAllocatesNothing()
        {
            long memory;
            double perFrame = BytesPerFrame(1000, out memory);
            Assert.Equal(0.0, perFrame, "managed bytes allocated per frame");
        }
    }
}
