// ThetaNetTypes.h: the Blueprint-facing enums, structs and delegate signatures of the
// ThetaNet plugin. Entity ids cross to Blueprints as int64 (the same 64 bits), peer ids
// and component ids as int32.
#pragma once

#include "CoreMinimal.h"

#include "ThetaNetTypes.generated.h"

/** Where a session is. */
UENUM(BlueprintType)
enum class EThetaSessionState : uint8
{
	/** No session. */
	None,
	/** A client waiting for the host's answer. */
	Joining,
	/** Hosting, or a client admitted by its host: replication runs. */
	Connected,
	/** A client whose connection timed out: remote actors hold still; Reconnect resumes
	 *  it, Leave ends it. */
	Disconnected,
};

/** Why a client's connection ended (ThetaDisconnectCause). */
UENUM(BlueprintType)
enum class EThetaDisconnectCause : uint8
{
	Unknown = 0,
	/** The host refused the join (token expired, forged or used; registry mismatch). */
	Refused = 1,
	/** Nothing answered at the address, or the address is unusable. */
	Unreachable = 2,
	/** The host's certificate did not match the pinned fingerprint. */
	Certificate = 3,
	/** The connection went silent, or the join got no answer in time: worth joining again. */
	TimedOut = 4,
	/** The host shut down. */
	HostClosed = 5,
	/** The host broke the protocol. */
	Protocol = 6,
	/** This side left. */
	Local = 7,
};

/** What happened to a replicated entity (ThetaSessionEventKind 1 to 5). */
UENUM(BlueprintType)
enum class EThetaEntityEventKind : uint8
{
	None = 0 UMETA(Hidden),
	Spawn = 1,
	Insert = 2,
	Update = 3,
	Remove = 4,
	Despawn = 5,
	/** The entity left this client's interest: its remote actor is destroyed here, the
	 *  entity lives on (it comes back as a Spawn when it enters again). */
	Left = 25,
};

/** One change to the replicated state, as the host sent it. */
USTRUCT(BlueprintType)
struct THETANET_API FThetaEntityEvent
{
	GENERATED_BODY()

	UPROPERTY(BlueprintReadOnly, Category = "Theta")
	EThetaEntityEventKind Kind = EThetaEntityEventKind::Spawn;

	/** The entity (64 bits as an int64). */
	UPROPERTY(BlueprintReadOnly, Category = "Theta")
	int64 Entity = 0;

	/** The component type's id, for inserts, updates and removes; 0 otherwise. */
	UPROPERTY(BlueprintReadOnly, Category = "Theta")
	int32 Component = 0;

	/** The component type's name (as registered), when known. */
	UPROPERTY(BlueprintReadOnly, Category = "Theta")
	FName ComponentName;

	/** The peer that created (owns) the entity. */
	UPROPERTY(BlueprintReadOnly, Category = "Theta")
	int32 Peer = 0;

	/** The host's tick of the change. */
	UPROPERTY(BlueprintReadOnly, Category = "Theta")
	int64 Tick = 0;

	/** The value, for inserts and updates. */
	UPROPERTY(BlueprintReadOnly, Category = "Theta")
	TArray<uint8> Data;
};

/** A named opaque blob type: every peer of a session must declare the same ones. */
USTRUCT(BlueprintType)
struct THETANET_API FThetaBlobType
{
	GENERATED_BODY()

	/** The blob's name; its component type is registered as "ue.Blob.<Name>". */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Theta")
	FName Name;

	/** Largest value in bytes (values larger than a datagram travel on the stream). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Theta", meta = (ClampMin = "1", ClampMax = "1048576"))
	int32 MaxBytes = 256;
};

DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(FThetaJoinedSignature, int32, LocalPeer);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(FThetaPeerJoinedSignature, int32, Peer);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FThetaPeerLeftSignature, int32, Peer, const FString&, Reason);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FThetaDisconnectedSignature, EThetaDisconnectCause, Cause, const FString&, Reason);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_FourParams(FThetaWriteRejectedSignature, int32, Peer, int64, Entity, int32, Component, const FString&, Reason);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(FThetaJoinRefusedSignature, const FString&, Reason);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(FThetaEntityEventSignature, const FThetaEntityEvent&, Event);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FThetaBlobSignature, FName, Name, const TArray<uint8>&, Bytes);
