// XR avatars: the local rig pushes its device poses, remote avatars follow their peer's.
#include "ThetaXrComponents.h"

#include "Camera/CameraComponent.h"
#include "Engine/Engine.h"
#include "Engine/GameInstance.h"
#include "Engine/World.h"
#include "GameFramework/Actor.h"
#include "IXRTrackingSystem.h"
#include "MotionControllerComponent.h"
#include "ThetaSubsystem.h"

namespace
{
UThetaSubsystem* SubsystemOf(const UActorComponent* Component)
{
	const UWorld* World = Component->GetWorld();
	const UGameInstance* GameInstance = World != nullptr ? World->GetGameInstance() : nullptr;
	return GameInstance != nullptr ? GameInstance->GetSubsystem<UThetaSubsystem>() : nullptr;
}

/** Whether a device component's pose is tracked now: a motion controller says so; the
 *  head is the HMD's tracking (or, without an HMD, a desktop camera: exact by definition). */
bool IsTracked(const USceneComponent* Device, bool bIsHead)
{
	if (const UMotionControllerComponent* Controller = Cast<UMotionControllerComponent>(Device))
	{
		return Controller->IsTracked();
	}
	if (bIsHead && GEngine != nullptr && GEngine->XRSystem.IsValid())
	{
		return GEngine->XRSystem->IsTracking(IXRTrackingSystem::HMDDeviceId);
	}
	return true;
}

constexpr int32 DeviceCount = 3;
const TCHAR* const DeviceTags[DeviceCount] = {TEXT("ThetaHead"), TEXT("ThetaLeftHand"), TEXT("ThetaRightHand")};
}  // namespace

UThetaXrRigComponent::UThetaXrRigComponent()
{
	PrimaryComponentTick.bCanEverTick = true;
	// After the camera and the controllers moved this frame.
	PrimaryComponentTick.TickGroup = TG_PostUpdateWork;
}

void UThetaXrRigComponent::BeginPlay()
{
	Super::BeginPlay();
	AActor* Owner = GetOwner();
	if (Owner == nullptr)
	{
		return;
	}
	if (Head == nullptr)
	{
		Head = Owner->FindComponentByClass<UCameraComponent>();
	}
	TArray<UMotionControllerComponent*> Controllers;
	Owner->GetComponents(Controllers);
	for (UMotionControllerComponent* Controller : Controllers)
	{
		if (LeftHand == nullptr && Controller->MotionSource == FName(TEXT("Left")))
		{
			LeftHand = Controller;
		}
		else if (RightHand == nullptr && Controller->MotionSource == FName(TEXT("Right")))
		{
			RightHand = Controller;
		}
	}
}

void UThetaXrRigComponent::TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction)
{
	Super::TickComponent(DeltaTime, TickType, ThisTickFunction);
	UThetaSubsystem* Subsystem = SubsystemOf(this);
	if (Subsystem == nullptr || !Subsystem->IsConnected())
	{
		return;
	}
	const USceneComponent* Devices[] = {Head, LeftHand, RightHand};
	for (uint8 Index = 0; Index < 3; ++Index)
	{
		if (Devices[Index] != nullptr)
		{
			Subsystem->PushDevicePose(Index, Devices[Index]->GetComponentTransform(), IsTracked(Devices[Index], Index == 0));
		}
	}
}

UThetaAvatarComponent::UThetaAvatarComponent()
{
	PrimaryComponentTick.bCanEverTick = true;
	PrimaryComponentTick.TickGroup = TG_PostUpdateWork;
}

void UThetaAvatarComponent::BeginPlay()
{
	Super::BeginPlay();
	Devices.Init(nullptr, DeviceCount);
	AActor* Owner = GetOwner();
	if (Owner == nullptr)
	{
		return;
	}
	TArray<USceneComponent*> Components;
	Owner->GetComponents(Components);
	for (USceneComponent* Component : Components)
	{
		for (int32 Index = 0; Index < Devices.Num(); ++Index)
		{
			if (Devices[Index] == nullptr && Component->ComponentHasTag(FName(DeviceTags[Index])))
			{
				Devices[Index] = Component;
			}
		}
	}
}

bool UThetaAvatarComponent::GetDevicePose(EThetaXrDevice Device, FTransform& OutWorldPose, bool& bOutTracked) const
{
	const UThetaSubsystem* Subsystem = SubsystemOf(this);
	return Subsystem != nullptr && Subsystem->SampleDevicePose(Peer, static_cast<uint8>(Device), OutWorldPose, bOutTracked);
}

void UThetaAvatarComponent::TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction)
{
	Super::TickComponent(DeltaTime, TickType, ThisTickFunction);
	for (int32 Index = 0; Index < Devices.Num(); ++Index)
	{
		USceneComponent* Device = Devices[Index];
		if (Device == nullptr)
		{
			continue;
		}
		FTransform Pose;
		bool bTracked = false;
		const bool bKnown = GetDevicePose(static_cast<EThetaXrDevice>(Index), Pose, bTracked);
		if (bKnown)
		{
			Device->SetWorldLocationAndRotation(Pose.GetLocation(), Pose.GetRotation());
		}
		if (bHideUntracked)
		{
			Device->SetVisibility(bKnown && bTracked, true);
		}
	}
}
