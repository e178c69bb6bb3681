// ThetaNetConversions.h: ThetaNetFrames.h applied to Unreal's types (FTransform, FVector,
// FQuat). The derivation and the tests live with the engine-free header.
#pragma once

#include "CoreMinimal.h"
#include "ThetaNetFrames.h"

namespace ThetaNet
{
/** An Unreal world transform as a ThetaPosef (OpenXR frame, metres); false when it cannot
 *  be one (non-finite, or beyond a float's range). */
inline bool ToThetaPose(const FTransform& Transform, double UnitsPerMeter, ThetaPosef& OutPose)
{
	return Frames::TryToThetaPose(Transform.GetLocation(), Transform.GetRotation(), UnitsPerMeter, OutPose);
}

/** A ThetaPosef as an Unreal world transform (unit scale). */
inline bool FromThetaPose(const ThetaPosef& Pose, double UnitsPerMeter, FTransform& OutTransform)
{
	FVector Position = FVector::ZeroVector;
	FQuat Rotation = FQuat::Identity;
	if (!Frames::TryToUnrealPose(Pose, UnitsPerMeter, Position, Rotation))
	{
		return false;
	}
	OutTransform = FTransform(Rotation, Position);
	return true;
}

/** An actor transform as the plugin's transform value (pose and scale). */
inline bool ToTransformValue(const FTransform& Transform, double UnitsPerMeter, Frames::FTransformValue& OutValue)
{
	ThetaPosef Pose;
	const FVector Scale = Transform.GetScale3D();
	if (!ToThetaPose(Transform, UnitsPerMeter, Pose) || Scale.ContainsNaN())
	{
		return false;
	}
	OutValue.Pose = Pose;
	OutValue.Scale = Frames::ToThetaScale(Scale);
	return true;
}

/** The plugin's transform value as an actor transform. */
inline bool FromTransformValue(const Frames::FTransformValue& Value, double UnitsPerMeter, FTransform& OutTransform)
{
	FTransform Transform;
	if (!FromThetaPose(Value.Pose, UnitsPerMeter, Transform))
	{
		return false;
	}
	Transform.SetScale3D(Frames::ToUnrealScale<FVector>(Value.Scale));
	OutTransform = Transform;
	return true;
}
}  // namespace ThetaNet
