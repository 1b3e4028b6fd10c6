#!/usr/bin/env bash
# Start a single-node Apache Kafka 4.1.1 broker (KRaft combined mode) on 127.0.0.1:29092.
# Usage: bench/faust_trial/start_broker.sh   (writes pid to /tmp/faust_trial_kafka/broker.pid)
set -euo pipefail
PORT=${PORT:-29092}; CPORT=${CPORT:-29093}
DIR=${DIR:-/tmp/faust_trial_kafka}
CP_FILE=${CP_FILE:-/tmp/cp_trial.txt}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ ! -s "$CP_FILE" ]; then
  mvn -q -f "$HERE/../../streams/kafka/pom.xml" dependency:build-classpath -Dmdep.outputFile="$CP_FILE"
fi
CP=$(cat "$CP_FILE")
rm -rf "$DIR"; mkdir -p "$DIR/data"
cat > "$DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DIR/data
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
num.partitions=8
auto.create.topics.enable=true
PROPS
UUID=$(java -cp "$CP" kafka.tools.StorageTool random-uuid)
java -cp "$CP" kafka.tools.StorageTool format -t "$UUID" -c "$DIR/server.properties" >"$DIR/format.log" 2>&1
nohup java -Xmx512m -cp "$CP" kafka.Kafka "$DIR/server.properties" >"$DIR/broker.log" 2>&1 &
echo $! > "$DIR/broker.pid"
for i in $(seq 1 60); do
  if (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then echo "broker up on $PORT pid $(cat $DIR/broker.pid)"; exit 0; fi
  sleep 1
done
echo "broker failed to start"; tail -30 "$DIR/broker.log"; exit 1
