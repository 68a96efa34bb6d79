# A message to an offline user waits and comes with a delay stamp.
user alice secret
user bob secret
login a alice
send a <message to='bob@${DOMAIN}' type='chat' id='o1'><body>later</body></message>
sleep 0.5
login b bob
send b <presence/>
expect-any b <message from='${JID:a}' type='chat' id='o1'><body>later</body>\
       <delay xmlns='urn:xmpp:delay' from='${DOMAIN}' stamp='*'/></message>
