using System;
using System.Threading;

namespace Theta.Tests
{
    public static class LogTests
    {
        private static int messages;

        [Test]
        public static void TheLogReachesSubscribersAndStopsWhenTheyLeave()
        {
            int seen = 0;
            string last = null;
            Action<LogLevel, string> handler = (level, text) =>
            {
                Interlocked.Increment(ref seen);
                last = text;
            };
            ThetaLog.Message += handler;
            ThetaLog.SetLevel(LogLevel.Debug);
            try
            {
                using (var world = new World())
                {
                    Assert.Throws<ThetaException>(() => world.Despawn(new Entity(5)), "a dead entity");
                }
                Assert.Equal(1, seen, "one refused call, one message");
                Assert.True(last.StartsWith("theta_world_despawn: "), last);
            }
            finally
            {
                ThetaLog.Message -= handler;
                ThetaLog.SetLevel(LogLevel.Warn);
            }
            using (var world = new World())
            {
                Assert.Throws<ThetaException>(() => world.Despawn(new Entity(5)), "a dead entity");
            }
            Assert.Equal(1, seen, "no message once unsubscribed");
        }

        /// <summary>Runs in the child domain: subscribes, logs once, keeps the callback set.</summary>
        private static void InChildDomain()
        {
            ThetaLog.Message += (level, text) => Interlocked.Increment(ref messages);
            ThetaLog.SetLevel(LogLevel.Debug);
            using (var world = new World())
            {
                try
                {
                    world.Despawn(new Entity(9));
                }
                catch (ThetaException)
                {
                }
            }
            AppDomain.CurrentDomain.SetData("messages", messages);
        }

        [Test]
        public static void UnloadingADomainThatSetTheLogCallbackLeavesTheProcessRunning()
        {
            AppDomain child = AppDomain.CreateDomain("theta-log-child", null, AppDomain.CurrentDomain.SetupInformation);
            child.DoCallBack(InChildDomain);
            Assert.Equal(1, (int)child.GetData("messages"), "the child's callback ran in the child");
            // Failing calls keep coming from another thread while the domain unloads: each
            // logs (level Debug), racing the removal of the child's callback.
            bool stop = false;
            int refused = 0;
            var hammer = new Thread(() =>
            {
                using (var world = new World())
                {
                    while (!Volatile.Read(ref stop))
                    {
                        try
                        {
                            world.Despawn(new Entity(11));
                        }
                        catch (ThetaException)
                        {
                            refused++;
                        }
                    }
                }
            });
            hammer.Start();
            Thread.Sleep(20);
            AppDomain.Unload(child);
            // Collecting frees what the unloaded domain left: without the removal of its
            // callback, Mono 6.8 then aborts at the next message (checked by hand).
            for (int i = 0; i < 3; i++)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
            Thread.Sleep(20);
            Volatile.Write(ref stop, true);
            hammer.Join();
            // Had the child's callback stayed registered, the next failing call would call
            // into the unloaded domain and crash the process.
            using (var world = new World())
            {
                for (int i = 0; i < 100; i++)
                {
                    Assert.Throws<ThetaException>(() => world.Despawn(new Entity(13)), "a dead entity");
                }
            }
            ThetaLog.SetLevel(LogLevel.Warn);
            Assert.True(refused > 0, "the other thread's calls were refused and logged");
            Assert.Equal(0, messages, "this domain's handler count is its own");
        }
    }
}
