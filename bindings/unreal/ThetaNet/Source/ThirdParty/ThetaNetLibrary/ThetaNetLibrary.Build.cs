// ThetaNetLibrary: the Theta native library (Rust, C ABI) as an external module. Nothing
// here is compiled: it adds the include path of theta.h / theta.hpp and links or stages the
// library that scripts/build-unreal-plugin.sh placed under
// Binaries/ThirdParty/ThetaNetLibrary/<platform dir>/ (see the plugin's README).
//
// Dynamic by default (a .dll / .so / .dylib loaded by the ThetaNet module at start-up, so
// the engine's own zstd and Theta's never meet in one link). Static linking is opt-in with
// the environment variable THETA_NET_STATIC=1 when the target is built (monolithic
// builds); the system libraries it needs are the ones rustc printed for that build
// (native-static-libs.txt beside the archive).
using System;
using System.Collections.Generic;
using System.IO;
using UnrealBuildTool;

public class ThetaNetLibrary : ModuleRules
{
	// Platform folders under Binaries/ThirdParty/ThetaNetLibrary, as the build script
	// writes them (tests/unreal_plugin.rs checks the two agree).
	const string Win64Dir = "Win64";
	const string LinuxDir = "Linux/x86_64-unknown-linux-gnu";
	const string LinuxArm64Dir = "Linux/aarch64-unknown-linux-gnueabi";
	const string MacDir = "Mac";
	const string AndroidArm64Dir = "Android/arm64-v8a";
	// Static archives sit in a Static/ folder of their platform's, with native-static-libs.txt.
	const string StaticDir = "Static";

	public ThetaNetLibrary(ReadOnlyTargetRules Target) : base(Target)
	{
		Type = ModuleType.External;

		string IncludeDir = Path.Combine(ModuleDirectory, "include");
		Require(Path.Combine(IncludeDir, "theta.h"));
		Require(Path.Combine(IncludeDir, "theta.hpp"));
		// System include path: the third-party headers are not held to the engine's warnings.
		PublicSystemIncludePaths.Add(IncludeDir);

		string LibraryRoot = Path.Combine(PluginDirectory, "Binaries", "ThirdParty", "ThetaNetLibrary");
		bool bStatic = Environment.GetEnvironmentVariable("THETA_NET_STATIC") == "1"
			&& Target.Platform != UnrealTargetPlatform.Android;
		PublicDefinitions.Add("THETA_NET_STATIC=" + (bStatic ? "1" : "0"));

		if (Target.Platform == UnrealTargetPlatform.Win64)
		{
			string Dir = Path.Combine(LibraryRoot, Win64Dir);
			if (bStatic)
			{
				LinkStatic(Path.Combine(Dir, StaticDir), "theta_net.lib", Target);
			}
			else
			{
				// The import library rustc writes beside the DLL; the DLL itself is loaded
				// by the ThetaNet module (FPlatformProcess::GetDllHandle) before any call,
				// so delay-loading keeps the executable from needing it on its search path.
				PublicAdditionalLibraries.Add(Require(Path.Combine(Dir, "theta_net.dll.lib")));
				Require(Path.Combine(Dir, "theta_net.dll"));
				PublicDelayLoadDLLs.Add("theta_net.dll");
				RuntimeDependencies.Add(Path.Combine("$(PluginDir)", "Binaries", "ThirdParty", "ThetaNetLibrary", Win64Dir, "theta_net.dll"));
			}
		}
		else if (Target.Platform == UnrealTargetPlatform.Linux || Target.Platform == UnrealTargetPlatform.LinuxArm64)
		{
			string Sub = Target.Platform == UnrealTargetPlatform.Linux ? LinuxDir : LinuxArm64Dir;
			string Dir = Path.Combine(LibraryRoot, Sub);
			if (bStatic)
			{
				LinkStatic(Path.Combine(Dir, StaticDir), "libtheta_net.a", Target);
			}
			else
			{
				// The script sets the SONAME to libtheta_net.so, so the executable records
				// that name (not this path) and finds the staged copy through its rpath.
				string So = Require(Path.Combine(Dir, "libtheta_net.so"));
				PublicAdditionalLibraries.Add(So);
				PublicDelayLoadDLLs.Add(So);
				RuntimeDependencies.Add(Path.Combine("$(PluginDir)", "Binaries", "ThirdParty", "ThetaNetLibrary", Sub, "libtheta_net.so"));
			}
		}
		else if (Target.Platform == UnrealTargetPlatform.Mac)
		{
			string Dir = Path.Combine(LibraryRoot, MacDir);
			if (bStatic)
			{
				LinkStatic(Path.Combine(Dir, StaticDir), "libtheta_net.a", Target);
			}
			else
			{
				// Universal (arm64 + x86_64), install name @rpath/libtheta_net.dylib.
				PublicDelayLoadDLLs.Add(Require(Path.Combine(Dir, "libtheta_net.dylib")));
				RuntimeDependencies.Add(Path.Combine("$(PluginDir)", "Binaries", "ThirdParty", "ThetaNetLibrary", MacDir, "libtheta_net.dylib"));
			}
		}
		else if (Target.Platform == UnrealTargetPlatform.Android)
		{
			// arm64 only (Quest, Pico and current phones). Linked here, packaged into the
			// APK's libs/arm64-v8a and loaded before libUnreal by the APL file.
			PublicAdditionalLibraries.Add(Require(Path.Combine(LibraryRoot, AndroidArm64Dir, "libtheta_net.so")));
			AdditionalPropertiesForReceipt.Add("AndroidPlugin", Path.Combine(ModuleDirectory, "ThetaNetLibrary_APL.xml"));
		}
		else
		{
			throw new BuildException("ThetaNet: no Theta library for platform " + Target.Platform
				+ " (supported: Win64, Linux, LinuxArm64, Mac, Android arm64).");
		}
	}

	/// Returns Path, or stops the build with what to run when the file is not there.
	static string Require(string FilePath)
	{
		if (!File.Exists(FilePath))
		{
			throw new BuildException("ThetaNet: " + FilePath + " is missing. Build and stage the Theta library "
				+ "with scripts/build-unreal-plugin.sh (see the ThetaNet plugin's README).");
		}
		return FilePath;
	}

	/// Links the static archive and the system libraries rustc printed for it
	/// (--print native-static-libs, saved by the build script as native-static-libs.txt).
	void LinkStatic(string Dir, string Archive, ReadOnlyTargetRules Target)
	{
		PublicAdditionalLibraries.Add(Require(Path.Combine(Dir, Archive)));
		string[] Words = File.ReadAllText(Require(Path.Combine(Dir, "native-static-libs.txt")))
			.Split(new char[] { ' ', '\t', '\r', '\n' }, StringSplitOptions.RemoveEmptyEntries);
		for (int Index = 0; Index < Words.Length; ++Index)
		{
			string Word = Words[Index];
			if (Word == "-framework" && Index + 1 < Words.Length)
			{
				PublicFrameworks.Add(Words[++Index]);
			}
			else if (Word.StartsWith("-l"))
			{
				PublicSystemLibraries.Add(Word.Substring(2));
			}
			else if (Word.EndsWith(".lib", StringComparison.OrdinalIgnoreCase))
			{
				PublicSystemLibraries.Add(Word);
			}
			// Anything else (/defaultlib:msvcrt: the engine picks its own CRT) is left out.
		}
	}
}
