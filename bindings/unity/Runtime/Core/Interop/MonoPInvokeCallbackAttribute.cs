using System;

namespace AOT
{
    /// <summary>
    /// Marks a static method that native code calls back into. IL2CPP (Unity's
    /// ahead-of-time compiler) recognises the attribute by its name and generates a native
    /// entry point for the method; Mono and .NET ignore it. Declared here so the core
    /// assembly needs no UnityEngine.
    /// </summary>
    [AttributeUsage(AttributeTargets.Method)]
    internal sealed class MonoPInvokeCallbackAttribute : Attribute
    {
        public MonoPInvokeCallbackAttribute(Type delegateType)
        {
            DelegateType = delegateType;
        }

        public Type DelegateType { get; }
    }
}
