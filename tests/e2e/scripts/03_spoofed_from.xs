# A client may not send as anyone else.
user alice secret
user bob secret
login a alice
login b bob
send a <message from='bob@${DOMAIN}/x' to='${JID:b}'><body>spoof</body></message>
stream-error a invalid-from
expect-none b message
