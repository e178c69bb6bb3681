// A replicated actor: writes its transform and blobs when it is this peer's, follows what
// arrives when it is another peer's.
#include "ThetaReplicatedComponent.h"

#include "Engine/GameInstance.h"
#include "Engine/World.h"
#include "GameFramework/Actor.h"
#include "ThetaNetConversions.h"
#include "ThetaNetModule.h"
#include "ThetaNetSettings.h"
#include "ThetaNetText.h"
#include "ThetaSubsystem.h"

UThetaReplicatedComponent::UThetaReplicatedComponent()
{
	PrimaryComponentTick.bCanEverTick = true;
	// After movement and animation, so the transform written is this frame's final one.
	PrimaryComponentTick.TickGroup = TG_PostUpdateWork;
}

UThetaSubsystem* UThetaReplicatedComponent::GetSubsystem() const
{
	const UWorld* World = GetWorld();
	const UGameInstance* GameInstance = World != nullptr ? World->GetGameInstance() : nullptr;
	return GameInstance != nullptr ? GameInstance->GetSubsystem<UThetaSubsystem>() : nullptr;
}

void UThetaReplicatedComponent::BeginPlay()
{
	Super::BeginPlay();
	if (UThetaSubsystem* Subsystem = GetSubsystem())
	{
		Subsystem->RegisterReplicated(this);
	}
}

void UThetaReplicatedComponent::EndPlay(const EEndPlayReason::Type EndPlayReason)
{
	if (UThetaSubsystem* Subsystem = GetSubsystem())
	{
		Subsystem->UnregisterReplicated(this);
	}
	Entity = 0;
	bRemote = false;
	Super::EndPlay(EndPlayReason);
}

int64 UThetaReplicatedComponent::GetEntityId() const
{
	return ThetaNet::Text::EntityToBlueprint(Entity);
}

void UThetaReplicatedComponent::BindLocal(uint64 InEntity, int32 InOwnerPeer)
{
	Entity = InEntity;
	OwnerPeer = InOwnerPeer;
	bRemote = false;
	LastWrittenTransform.Reset();
	WriteTransform();
	// Blobs set before the entity existed go out now.
	UThetaSubsystem* Subsystem = GetSubsystem();
	for (const TPair<FName, TArray<uint8>>& Blob : Blobs)
	{
		uint32 Component = 0;
		if (Subsystem != nullptr && Subsystem->GetBlobComponentId(Blob.Key, Component))
		{
			Subsystem->WriteValue(Entity, Component, Blob.Value.GetData(), Blob.Value.Num());
		}
	}
}

void UThetaReplicatedComponent::BindRemote(uint64 InEntity, int32 InOwnerPeer)
{
	Entity = InEntity;
	OwnerPeer = InOwnerPeer;
	bRemote = true;
	bHasRemoteTarget = false;
}

void UThetaReplicatedComponent::Unbind()
{
	Entity = 0;
	OwnerPeer = -1;
	bRemote = false;
	LastWrittenTransform.Reset();
}

void UThetaReplicatedComponent::WriteTransform()
{
	UThetaSubsystem* Subsystem = GetSubsystem();
	const AActor* Owner = GetOwner();
	if (!bReplicateTransform || bRemote || Entity == 0 || Subsystem == nullptr || Owner == nullptr)
	{
		return;
	}
	ThetaNet::Frames::FTransformValue Value;
	if (!ThetaNet::ToTransformValue(Owner->GetActorTransform(), Subsystem->GetUnitsPerMeter(), Value))
	{
		return;
	}
	uint8 Bytes[ThetaNet::Frames::TransformValueBytes];
	ThetaNet::Frames::PackTransform(Value, Bytes);
	// Unchanged bytes are no change to the library either; this skips the call.
	if (LastWrittenTransform.Num() == static_cast<int32>(sizeof Bytes)
		&& FMemory::Memcmp(LastWrittenTransform.GetData(), Bytes, sizeof Bytes) == 0)
	{
		return;
	}
	if (Subsystem->WriteValue(Entity, Subsystem->GetTransformComponentId(), Bytes, static_cast<int32>(sizeof Bytes)))
	{
		LastWrittenTransform = TArray<uint8>(Bytes, static_cast<int32>(sizeof Bytes));
	}
}

void UThetaReplicatedComponent::TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction)
{
	Super::TickComponent(DeltaTime, TickType, ThisTickFunction);
	if (Entity == 0)
	{
		return;
	}
	if (!bRemote)
	{
		WriteTransform();
		return;
	}
	AActor* Owner = GetOwner();
	if (!bHasRemoteTarget || RemoteSmoothing <= 0.0f || Owner == nullptr)
	{
		return;
	}
	// Exponential approach: the same smoothing at any frame rate.
	const float Alpha = FMath::Clamp(1.0f - FMath::Exp(-RemoteSmoothing * DeltaTime), 0.0f, 1.0f);
	const FTransform Current = Owner->GetActorTransform();
	FTransform Next;
	Next.SetLocation(FMath::Lerp(Current.GetLocation(), RemoteTarget.GetLocation(), Alpha));
	Next.SetRotation(FQuat::Slerp(Current.GetRotation(), RemoteTarget.GetRotation(), Alpha));
	Next.SetScale3D(FMath::Lerp(Current.GetScale3D(), RemoteTarget.GetScale3D(), Alpha));
	Owner->SetActorTransform(Next);
}

void UThetaReplicatedComponent::ApplyRemoteTransform(const FTransform& Transform)
{
	AActor* Owner = GetOwner();
	if (Owner != nullptr && (RemoteSmoothing <= 0.0f || !bHasRemoteTarget))
	{
		Owner->SetActorTransform(Transform);
	}
	RemoteTarget = Transform;
	bHasRemoteTarget = true;
}

void UThetaReplicatedComponent::ApplyRemoteBlob(FName Name, const TArray<uint8>& Bytes)
{
	Blobs.Add(Name, Bytes);
	OnBlobReceived.Broadcast(Name, Bytes);
}

bool UThetaReplicatedComponent::SetBlob(FName Name, const TArray<uint8>& Bytes)
{
	if (bRemote)
	{
		UE_LOG(LogThetaNet, Warning, TEXT("ThetaNet: %s is peer %d's: its blob %s is not this peer's to set"),
			*GetNameSafe(GetOwner()), OwnerPeer, *Name.ToString());
		return false;
	}
	const FThetaBlobType* Type = GetDefault<UThetaNetSettings>()->BlobTypes.FindByPredicate(
		[Name](const FThetaBlobType& Candidate) { return Candidate.Name == Name; });
	if (Type == nullptr || Bytes.Num() > Type->MaxBytes)
	{
		UE_LOG(LogThetaNet, Warning, TEXT("ThetaNet: blob %s (%d bytes) is not a blob type of the Theta Net settings or is too large"),
			*Name.ToString(), Bytes.Num());
		return false;
	}
	Blobs.Add(Name, Bytes);
	UThetaSubsystem* Subsystem = GetSubsystem();
	uint32 Component = 0;
	if (Entity != 0 && Subsystem != nullptr && Subsystem->GetBlobComponentId(Name, Component))
	{
		return Subsystem->WriteValue(Entity, Component, Bytes.GetData(), Bytes.Num());
	}
	return true;  // sent when the actor gets its entity
}

bool UThetaReplicatedComponent::GetBlob(FName Name, TArray<uint8>& OutBytes) const
{
	if (const TArray<uint8>* Found = Blobs.Find(Name))
	{
		OutBytes = *Found;
		return true;
	}
	return false;
}
